//! The HTTP API (design §6): risk lookups, decisions, Envoy ext_authz, health and metrics.
//! Placeholder until the enforcement API issue lands.
