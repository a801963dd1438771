//! End-to-end tests of the HTTP API against real PostgreSQL shards (one test binary, so the
//! private clusters start once).

mod helpers;

mod audit;
mod auth;
mod bad_input;
mod claims;
mod cli;
mod connections;
mod console;
mod elastic;
mod failover;
mod fairness;
mod identity;
mod layers;
mod local_ha;
mod moves;
mod netns;
mod nonces;
mod ops;
mod probe;
mod realtime;
mod receipts;
mod redis;
mod replica_reads;
mod seeds;
mod shards;
mod shutdown;
mod split_brain;
mod statistics;
mod transcripts;
mod vectors;
