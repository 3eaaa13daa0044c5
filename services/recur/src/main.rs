//! `recur` — run Recur all-in-one, or mint a token.
//!
//! ```text
//! recur [serve]                          all five services on RECUR_LISTEN_ADDR (default 127.0.0.1:50051)
//! recur token [--tenant T] [--days N]    print a bearer token for tenant T
//! ```

use std::process::ExitCode;

use recur_config::Config;

const USAGE: &str = "usage:
  recur [serve]                          run all five services on one port
  recur token [--tenant T] [--days N]    print a bearer token (default: RECUR_DEFAULT_TENANT, 30 days)
  recur help";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recur: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(config).await,
        Some("token") => token(&config, &args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("recur: unknown command {other:?}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn token(config: &Config, args: &[String]) -> ExitCode {
    let mut tenant = config.default_tenant.clone();
    let mut days: i64 = 30;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--tenant", Some(t)) => tenant = t.clone(),
            ("--days", Some(d)) => match d.parse() {
                Ok(n) if n > 0 => days = n,
                _ => {
                    eprintln!("recur token: --days takes a positive whole number");
                    return ExitCode::FAILURE;
                }
            },
            _ => {
                eprintln!("recur token: unexpected {flag:?}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !recur_auth::is_valid_tenant_id(&tenant) {
        eprintln!("recur token: tenant ids are 1-64 letters, digits, '_' or '-'");
        return ExitCode::FAILURE;
    }
    match recur::signing_key(config) {
        Ok((key, _)) => {
            println!("{}", key.mint(&tenant, chrono::Utc::now(), chrono::Duration::days(days)));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("recur token: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let telemetry = match recur_telemetry::init("recur", &config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("recur: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = async {
        let (key, dev_key) = recur::signing_key(&config)?;
        let addr = config.listen_addr.clone().unwrap_or_else(|| recur::DEFAULT_ADDR.to_string());
        let listener = recur_server::bind(&addr)
            .await
            .map_err(|e| recur_server::StartError::Network(format!("{addr}: {e}")))?;
        let storage = match &config.database_url {
            Some(_) => "database from RECUR_DATABASE_URL".to_string(),
            None => format!("SQLite files in {}", config.data_dir.display()),
        };
        let cache = if config.redis_url.is_some() { "Redis session cache" } else { "in-memory session cache" };
        let tenant = config.default_tenant.clone();
        let app = recur::start(config.clone(), recur_clock::system(), key.clone(), listener, recur_server::shutdown_signal()).await?;
        let local = app.local_addr();
        let mut banner = format!("Recur all-in-one listening on {local} ({storage}, {cache})\n");
        if let Some(created) = dev_key {
            let path = config.data_dir.join("dev-signing.key");
            banner.push_str(&format!(
                "{} development signing key {} (set RECUR_JWT_SECRET in production)\n",
                if created { "Created" } else { "Using" },
                path.display()
            ));
            let token = key.mint(&tenant, chrono::Utc::now(), chrono::Duration::days(30));
            banner.push_str(&format!(
                "Token for tenant \"{tenant}\" (valid 30 days):\n\n  export RECUR_TOKEN={token}\n\n  grpcurl -plaintext -H \"authorization: Bearer $RECUR_TOKEN\" {local} list\n"
            ));
        }
        print!("{banner}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!(addr = %local, "recur all-in-one serving");
        app.wait().await;
        Ok::<(), recur_server::StartError>(())
    }
    .await;
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recur: {e}");
            ExitCode::FAILURE
        }
    }
}
