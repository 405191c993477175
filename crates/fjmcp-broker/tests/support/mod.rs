//! Fixtures shared by the integration tests.
#![allow(dead_code)]

pub mod broker;
pub mod children;
pub mod databases;
pub mod oauth;
