//! The embedded FTP(S) server the mines upload to.
