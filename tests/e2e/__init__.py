"""End-to-end tests: graph_service and logic_service started on free loopback ports."""
