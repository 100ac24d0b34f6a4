//! High availability on etcd: a leader elected through etcd's election API
//! appends journal batches to etcd in fenced transactions, and standbys
//! watch the log prefix. numpool runs no consensus of its own: everything
//! goes through etcd's v3 JSON gateway with the small blocking HTTP/1.1
//! client of [`etcd`] (no gRPC, no protoc).

#![allow(dead_code)] // nothing uses the etcd client yet

pub(crate) mod etcd;
