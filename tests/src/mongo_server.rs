//! Spawns a throwaway SecantusDB (MongoDB-compatible) server (written by the users issue).
