//! Spawns throwaway redis-server instances and 3-master Redis Clusters (written by the Redis issue).
