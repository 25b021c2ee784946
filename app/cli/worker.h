#pragma once
// `tessera worker`: serves the worker protocol (protocol/worker_protocol.h, docs/worker-protocol.md)
// on stdin/stdout for the workbench, on this machine or over SSH. Jobs run on threads of their own,
// so cancel, pause and resume requests are read while a job runs; the core's log goes to stderr and
// to "log" messages. Ends when stdin closes or on "shutdown", cancelling whatever still runs.
namespace tessera::cli {

int run_worker();

}  // namespace tessera::cli
