"""The embedded demo: `make run` sets up Acme Corp from the seed's config file, simulates its
spring (April and May 2026: $62,000 in May, as on the seed page) and serves it. It sits above
every app and nothing imports it; production deployments need none of it."""
