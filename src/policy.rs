//! Enforcement decisions from the live score and a declarative policy (design §6).
//! Placeholder until the enforcement API issue lands.
