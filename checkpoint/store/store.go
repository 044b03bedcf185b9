// Package store keeps checkpoints and savepoints durable: state files and
// the _metadata that makes a checkpoint complete. Storage is behind the small
// Storage interface so that an object store can implement it later; FS is the
// local-filesystem implementation.
package store
