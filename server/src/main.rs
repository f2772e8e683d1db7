use std::io::BufRead as _;

use anyhow::Context as _;
use clap::Parser as _;
use platform::{Actor, NewUser, Role};
use server::{
    config::{Cli, Command, Config, UserCommand},
    serve::{Database, init_tracing, serve},
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // A client of a server, anywhere: nothing of this machine's configuration applies.
        Command::Client(command) => server::client::run(command, cli.json).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "director", &mut std::io::stdout());
            std::process::ExitCode::SUCCESS
        }
        _ => match manage(cli).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("Error: {err:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// The commands that run or manage this machine's Director.
async fn manage(cli: Cli) -> anyhow::Result<()> {
    let serve_args = match &cli.command {
        Command::Serve(args) => Some(args.as_ref()),
        _ => None,
    };
    let config = Config::resolve(&cli, serve_args)?;
    init_tracing(config.log_format);
    match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Images => {
            let orch = orchestrator::Orchestrator::connect(config.edge.namespace()?).await?;
            let images = orch.base_images();
            for image in orchestrator::base_images::BaseImage::ALL {
                let reference = images.reference(image);
                let made = images
                    .ensure(&orch, image, &mut |line| eprintln!("    {}", line.0))
                    .await
                    .with_context(|| format!("making {reference}"))?;
                println!("{reference}: {}", if made { "made" } else { "already there" });
            }
            Ok(())
        }
        Command::Migrate => {
            let db = Database::open(&config).await?;
            println!("The database is up to date.");
            db.close().await;
            Ok(())
        }
        Command::User(UserCommand::Create {
            username,
            display_name,
            email,
            admin,
        }) => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let db = Database::open(&config).await?;
            let new = NewUser {
                username,
                display_name,
                email,
                password,
                role: if admin { Role::Admin } else { Role::User },
            };
            let result = async {
                db.platform(&config)?
                    .create_user(Some(&Actor::operator()), new)
                    .await
                    .map_err(anyhow::Error::from)
            }
            .await;
            db.close().await;
            let user = result?;
            println!("Created {} ({}).", user.username, user.role.as_str());
            Ok(())
        }
        Command::Completions { .. } | Command::Client(_) => Ok(()),
    }
}
