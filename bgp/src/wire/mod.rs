//! BGP-4 message codec (RFC 4271): typed messages and their bytes.
