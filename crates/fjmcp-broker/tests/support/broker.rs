//! Starting the real `fjmcp-broker` binary for tests.
