//! `recur` — run Recur all-in-one, or mint a token.
//!
//! ```text
//! recur [serve]                          all five services on RECUR_LISTEN_ADDR (default 127.0.0.1:50051)
//! recur token [--tenant T] [--days N]    print a bearer token for tenant T
//! recur catalog apply FILE [--dry-run] [--allow-archive-all]
//!                                        apply a catalog document
//! recur catalog export [--format F]      print the catalog as a document
//! ```

use std::process::ExitCode;

use recur_config::Config;

const USAGE: &str = "usage:
  recur [serve]                          run all five services on one port
  recur token [--tenant T] [--days N]    print a bearer token (default: RECUR_DEFAULT_TENANT, 30 days)
  recur catalog apply FILE [--dry-run] [--allow-archive-all] [--addr A] [--tenant T]
                                         apply a catalog document (YAML or JSON) to a running Recur;
                                         a document holding no resource archives the whole catalog,
                                         and is refused without --allow-archive-all
  recur catalog export [--format yaml|json] [--addr A] [--tenant T]
                                         print a tenant's catalog as a document
  recur help

The catalog commands reach Recur at --addr (default RECUR_LISTEN_ADDR, else 127.0.0.1:50051)
with RECUR_TOKEN, or else a token they mint with RECUR_JWT_SECRET or the development key.";

// mimalloc: markedly less allocator contention than glibc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Some("catalog") => catalog(&config, &args[1..]).await,
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

/// `recur catalog apply|export`.
async fn catalog(config: &Config, args: &[String]) -> ExitCode {
    use recur_proto::catalog::v1 as pb;
    let mut file = None;
    let mut dry_run = false;
    let mut allow_archive_all = false;
    let mut format = pb::DocumentFormat::Yaml;
    let mut addr = config.listen_addr.clone().unwrap_or_else(|| recur::DEFAULT_ADDR.to_string());
    let mut tenant = config.default_tenant.clone();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("", args),
    };
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--allow-archive-all" => allow_archive_all = true,
            "--addr" | "--tenant" | "--format" => {
                let Some(value) = it.next() else {
                    eprintln!("recur catalog: {arg} needs a value");
                    return ExitCode::FAILURE;
                };
                match arg.as_str() {
                    "--addr" => addr = value.clone(),
                    "--tenant" => tenant = value.clone(),
                    _ => {
                        format = match value.as_str() {
                            "yaml" => pb::DocumentFormat::Yaml,
                            "json" => pb::DocumentFormat::Json,
                            other => {
                                eprintln!("recur catalog: --format is yaml or json, not {other:?}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                }
            }
            other if file.is_none() && !other.starts_with("--") => file = Some(other.to_string()),
            other => {
                eprintln!("recur catalog: unexpected {other:?}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    let token = match std::env::var("RECUR_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => match recur::signing_key(config) {
            Ok((key, _)) => key.mint(&tenant, chrono::Utc::now(), chrono::Duration::minutes(10)),
            Err(e) => {
                eprintln!("recur catalog: no RECUR_TOKEN and no key to mint one: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut client = match recur::catalog_client(&addr, token).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recur catalog: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (command, file) {
        ("apply", Some(path)) => {
            let document = match std::fs::read_to_string(&path) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("recur catalog apply: {path}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let format = if path.ends_with(".json") { pb::DocumentFormat::Json } else { pb::DocumentFormat::Yaml };
            client
                .apply_catalog(pb::ApplyCatalogRequest { document, format: format as i32, dry_run, allow_archive_all })
                .await
                .map(|r| print_changes(&r.into_inner()))
        }
        ("export", None) => client.export_catalog(pb::ExportCatalogRequest { format: format as i32 }).await.map(|r| {
            print!("{}", r.into_inner().document);
        }),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => {
            eprintln!("recur catalog: {:?}: {}", status.code(), status.message());
            for v in recur_error::details(&status).violations {
                eprintln!("  {}: {}", v.field, v.description);
            }
            ExitCode::FAILURE
        }
    }
}

fn print_changes(r: &recur_proto::catalog::v1::ApplyCatalogResponse) {
    use recur_proto::catalog::v1::ChangeAction;
    let mut counts = [0usize; 4];
    for c in &r.changes {
        let (label, slot) = match ChangeAction::try_from(c.action) {
            Ok(ChangeAction::Created) => ("created", 0),
            Ok(ChangeAction::Changed) => ("changed", 1),
            Ok(ChangeAction::Archived) => ("archived", 2),
            _ => ("unchanged", 3),
        };
        counts[slot] += 1;
        let fields =
            if c.changed_fields.is_empty() { String::new() } else { format!(" ({})", c.changed_fields.join(", ")) };
        println!("{label:<9} {:<8} {:<28} {}{fields}", c.resource_type, c.handle, c.id);
    }
    println!(
        "{}: {} created, {} changed, {} archived, {} unchanged",
        if r.applied { "applied" } else { "dry run, nothing written" },
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
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
        let demo = config.demo_catalog.unwrap_or(dev_key.is_some());
        let mut demo_note = String::new();
        if demo {
            match recur::load_demo_catalog(&local.to_string(), &key, &tenant).await {
                Ok(Some(n)) => demo_note = format!("Loaded the demo catalog into tenant \"{tenant}\" ({n} resources)\n"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "demo catalog not loaded"),
            }
        }
        let mut banner = format!("Recur all-in-one listening on {local} ({storage}, {cache})\n{demo_note}");
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
