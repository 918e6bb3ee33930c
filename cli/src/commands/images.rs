//! `berth images build`: the images Berth needs, built offline from this very binary.

use berth_agent::runtime::image::ImageOutcome;

#[derive(Debug, clap::Subcommand)]
pub enum ImagesCommand {
    /// Build berth-demo:latest (a scratch image of this binary running `berth demo`).
    Build,
}

pub async fn run(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::Build => {
            let outcome = berth_agent::ensure_demo_image().await?;
            match outcome {
                ImageOutcome::Built => crate::outln!("built {}", berth_agent::DEMO_IMAGE),
                ImageOutcome::AlreadyCurrent => {
                    crate::outln!("{} is current", berth_agent::DEMO_IMAGE)
                }
            }
            Ok(())
        }
    }
}
