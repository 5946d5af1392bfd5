//! The watched folder, for mines that already upload to another FTP server.
