//! Entry point: everything happens in `trusted_launcher::run`, which returns the exit code.

fn main() {
    std::process::exit(trusted_launcher::run(std::env::args_os()));
}
