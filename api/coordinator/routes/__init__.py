"""The coordinator's routes, one module per domain; each registers its routes on the app
(``add_routes``), so the app keeps one flat route table."""
