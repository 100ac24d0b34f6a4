//! The `numpool` binary: everything is in `numpool::server`.

fn main() -> std::process::ExitCode {
    numpool::server::main()
}
