fn main() -> std::process::ExitCode {
    roster::cli::run(std::env::args_os())
}
