//! Following what the server streams (Server-Sent Events): an operation until it ends, with a
//! spinner that names the action under way, and a site's output as it is written.

use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;
use reqwest::Method;
use serde_json::Value;

use super::{Api, Failure, Out, Outcome, answer, text, unreachable};

/// The events of `path`, each as its name and JSON data, until the server ends the stream.
async fn events(
    api: &Api,
    path: &str,
) -> Outcome<impl futures::Stream<Item = Outcome<(String, Value)>> + use<>> {
    let response = api
        .request(Method::GET, path)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        answer(response).await?;
        return Err(Failure::Failed("the server sent no events".to_owned()));
    }
    Ok(response.bytes_stream().eventsource().map(|event| {
        let event = event.map_err(|err| Failure::Failed(format!("the stream broke off: {err}")))?;
        let data = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
        Ok((event.event, data))
    }))
}

/// Waits for operation `id` to end, showing its progress; Err when it failed (with why).
pub(super) async fn operation(api: &Api, id: i64, out: Out) -> Outcome {
    let spinner = if out.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let stream = events(api, &format!("/api/v1/operations/{id}/follow")).await?;
    futures::pin_mut!(stream);
    let mut last = Value::Null;
    while let Some(event) = stream.next().await {
        let (name, operation) = event?;
        if name == "gone" && last["kind"] == "delete-site" {
            spinner.finish_and_clear();
            return Ok(());
        }
        if name != "operation" {
            continue;
        }
        let actions = operation["actions"].as_array().cloned().unwrap_or_default();
        let done = actions.iter().filter(|a| a["state"] == "done").count();
        let current = actions
            .iter()
            .find(|a| a["state"] == "running" || a["state"] == "pending")
            .map(|a| text(&a["action"]))
            .unwrap_or_default();
        spinner.set_message(format!(
            "{} {}: {done}/{} {current}",
            text(&operation["kind"]),
            text(&operation["state"]),
            actions.len()
        ));
        last = operation;
    }
    spinner.finish_and_clear();
    match last["state"].as_str() {
        Some("done") => {
            if out.json {
                out.show(&last, |_| String::new());
            }
            Ok(())
        }
        Some("failed") => {
            let why = last["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["state"] == "failed")
                .map(|a| format!("{}: {}", text(&a["action"]), text(&a["output"])))
                .unwrap_or_default();
            Err(Failure::Failed(format!(
                "operation {id} ({}) failed: {why}",
                text(&last["kind"])
            )))
        }
        _ => Err(Failure::Failed(format!("operation {id}'s progress broke off"))),
    }
}

/// Prints a site's output as it is written, until the server ends the stream.
pub(super) async fn logs(api: &Api, site: i64, lines: u32, out: Out) -> Outcome {
    let stream = events(api, &format!("/api/v1/sites/{site}/logs/follow?lines={lines}")).await?;
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let (name, data) = event?;
        match name.as_str() {
            "line" => out.show(&data, |line| text(&line["text"])),
            "error" => return Err(Failure::Failed(text(&data))),
            _ => {}
        }
    }
    Ok(())
}
