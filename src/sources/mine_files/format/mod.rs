//! The networking files' format: names, records, encodings and the field tables. Pure and
//! synchronous (no I/O, no clock).
