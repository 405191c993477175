//! Fixtures shared by the integration tests.
#![allow(dead_code)]

pub mod databases;
pub mod broker;
