//! The `tandem` executable: read the configuration, start logging, serve.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use clap::Parser;
    use tandem::server::config::LogFormat;
    use tracing_subscriber::EnvFilter;

    let config = tandem::server::config::Config::parse();
    // The admin commands print their answer on standard output: their logs go to standard
    // error, and only warnings unless asked.
    let admin = config.command.as_ref().is_some_and(|c| c.prints_result());
    let default_level = if admin { "warn" } else { "info" };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = config.log_format == LogFormat::Json;
    let to_stderr = admin;
    // Colours only for a person at a terminal, never in log files.
    let ansi = !json
        && if to_stderr {
            std::io::IsTerminal::is_terminal(&std::io::stderr())
        } else {
            std::io::IsTerminal::is_terminal(&std::io::stdout())
        };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match (json, to_stderr) {
        (true, true) => logs.json().with_writer(std::io::stderr).init(),
        (true, false) => logs.json().init(),
        (false, true) => logs.with_writer(std::io::stderr).init(),
        (false, false) => logs.init(),
    }
    let one_off = config.command.as_ref().is_some_and(|c| c.is_one_off());
    match tandem::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if one_off => {
            // A command's failure is said plainly, whatever the log level.
            eprintln!("tandem: {error}");
            std::process::ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build is a library; the server binary needs `--features ssr`.
}
