//! `berth images build`: the images Berth needs, built offline from this very binary.

use berth_agent::runtime::image::ImageOutcome;

#[derive(Debug, clap::Subcommand)]
pub enum ImagesCommand {
    /// Build berth:latest (this binary, for server, agent and proxy containers) and
    /// berth-demo:latest (the same binary running `berth demo`), from nothing.
    Build,
}

pub async fn run(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::Build => {
            report(
                berth_agent::BERTH_IMAGE,
                berth_agent::ensure_berth_image().await?,
            );
            report(
                berth_agent::DEMO_IMAGE,
                berth_agent::ensure_demo_image().await?,
            );
            Ok(())
        }
    }
}

fn report(image: &str, outcome: ImageOutcome) {
    match outcome {
        ImageOutcome::Built => crate::outln!("built {image}"),
        ImageOutcome::AlreadyCurrent => crate::outln!("{image} is current"),
    }
}
