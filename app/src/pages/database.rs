use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    AppError,
    api::{
        AddDatabase, CONSOLE_ROWS, CONSOLE_TIMEOUT_SECS, ConsoleRun, DatabaseKind, DatabasePageData,
        DatabaseRow, DatabaseState, DeleteDatabase, RetryOperation, RevealDatabase, RotateDatabasePassword,
        RunSql, SiteState, StatementResult, Value, site_databases,
    },
    components::{
        ErrorPage, FieldError, FormError, Operation, SignedIn, SiteTabs, failure, state_badge, ticker,
    },
};

/// A site's databases: add one, see how to connect, rotate its password, delete it, and the
/// SQL console.
#[component]
pub fn DatabasePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
    // `?shell=postgresql` opens that database's shell on the page.
    let query = use_query_map();
    let shell = move || {
        query
            .read()
            .get("shell")
            .and_then(|kind| kind.parse::<DatabaseKind>().ok())
    };
    let actions = Actions::new();
    // While something is under way the page refreshes itself every second (once hydrated).
    let busy = StoredValue::new(false);
    let tick = ticker(std::time::Duration::from_secs(1), move || {
        busy.try_get_value().unwrap_or(false)
    });
    let page = Resource::new(
        move || (id(), actions.version(), tick.get()),
        |(id, _, _)| async move {
            match id {
                Some(id) => site_databases(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Title text="Database"/>
        <SignedIn page=move |_| view! {
            <Transition fallback=|| view! { <p class="loading">"Loading the databases…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(data) => {
                            busy.try_set_value(data.busy());
                            view! { <DatabaseView data actions shell=shell()/> }.into_any()
                        }
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Transition>
        }/>
    }
}

/// The server actions whose completion refreshes the page.
#[derive(Clone, Copy)]
struct Actions {
    add: ServerAction<AddDatabase>,
    rotate: ServerAction<RotateDatabasePassword>,
    delete: ServerAction<DeleteDatabase>,
    retry: ServerAction<RetryOperation>,
    run: ServerAction<RunSql>,
}

impl Actions {
    fn new() -> Self {
        Self {
            add: ServerAction::new(),
            rotate: ServerAction::new(),
            delete: ServerAction::new(),
            retry: ServerAction::new(),
            run: ServerAction::new(),
        }
    }

    fn version(&self) -> usize {
        self.add.version().get()
            + self.rotate.version().get()
            + self.delete.version().get()
            + self.retry.version().get()
            + self.run.version().get()
    }
}

#[component]
fn DatabaseView(data: DatabasePageData, actions: Actions, shell: Option<DatabaseKind>) -> impl IntoView {
    let id = data.card.id;
    let deleting = data.card.state == SiteState::Deleting;
    let add_error = failure(actions.add.value());
    let missing: Vec<DatabaseKind> = DatabaseKind::ALL
        .iter()
        .copied()
        .filter(|kind| !data.databases.iter().any(|d| d.kind == *kind))
        .collect();
    let ready: Vec<(DatabaseKind, String)> = data
        .databases
        .iter()
        .filter(|d| d.state == DatabaseState::Ready)
        .map(|d| (d.kind, d.name.clone()))
        .collect();
    view! {
        <div class="page-head">
            <h1>{data.card.name.clone()}</h1>
            {state_badge(data.card.state)}
        </div>
        <SiteTabs id current="database"/>
        {shell.filter(|kind| ready.iter().any(|(k, _)| k == kind)).map(|kind| view! {
            <section class="card" aria-labelledby="shell-title">
                <div class="page-head">
                    <h2 id="shell-title">{format!("{} shell", kind.label())}</h2>
                    <a href=format!("/sites/{id}/database")>"Close"</a>
                </div>
                <section class="terminal" data-terminal-site=id.to_string() data-terminal-shell=kind.as_str() aria-label="Database shell"></section>
                <p class="hint">{match kind {
                    DatabaseKind::Postgresql => "psql, connected as the site's role. \\dt lists the tables, \\q ends it.",
                    DatabaseKind::Mysql => "The mariadb client, connected as the site's user. SHOW TABLES; lists the tables, exit ends it.",
                }}</p>
            </section>
        }.into_any())}
        {data.databases.is_empty().then(|| view! {
            <p class="intro">
                "Give the site a database of its own: Director makes it on its own server, with a role and a password for this site alone, and the site gets "
                <code>"DATABASE_URL"</code>
                " (and the usual "<code>"PG*"</code>" or "<code>"MYSQL_*"</code>" variables) in its environment."
            </p>
        })}
        {data.databases.into_iter().map(|row| view! { <DatabaseCard id row actions/> }.into_any()).collect_view()}
        {(!deleting && !missing.is_empty()).then(|| view! {
            <section class="card" aria-labelledby="add-title">
                <h2 id="add-title">"Add a database"</h2>
                <FormError error=add_error/>
                <div class="controls">
                    {missing.into_iter().map(|kind| view! {
                        <ActionForm action=actions.add attr:class="inline">
                            <input type="hidden" name="site" value=id.to_string()/>
                            <input type="hidden" name="kind" value=kind.as_str()/>
                            <button type="submit" class="primary">{format!("Add a {} database", kind.label())}</button>
                        </ActionForm>
                    }).collect_view()}
                </div>
            </section>
        }.into_any())}
        {(!ready.is_empty()).then(|| view! { <Console id ready history=data.history.clone() last_run=data.last_run.clone() run=actions.run/> }.into_any())}
        {(!data.operations.is_empty()).then(|| view! {
            <section aria-labelledby="db-ops-title">
                <h2 id="db-ops-title">"Database operations"</h2>
                <ol class="operations">
                    {data.operations.into_iter().map(|op| view! { <Operation op site=id retry=actions.retry/> }).collect_view()}
                </ol>
            </section>
        }.into_any())}
    }
}

/// One database: how to connect (the password only when asked for), its size and
/// connections, its shell, a dump of it, rotating its password, deleting it.
#[component]
fn DatabaseCard(id: i32, row: DatabaseRow, actions: Actions) -> impl IntoView {
    let reveal = ServerAction::<RevealDatabase>::new();
    let revealed = move || reveal.value().get().and_then(Result::ok);
    let reveal_error = failure(reveal.value());
    let rotate_error = failure(actions.rotate.value());
    let delete_error = failure(actions.delete.value());
    let kind = row.kind;
    let ready = row.state == DatabaseState::Ready;
    let (title, heading) = (format!("db-{}", kind.as_str()), format!("db-{}", kind.as_str()));
    let hidden_url = row.url.clone();
    view! {
        <section class="card database" aria-labelledby=title data-kind=kind.as_str()>
            <div class="page-head">
                <h2 id=heading>{format!("{} database", kind.label())}</h2>
                {state_badge(row.state)}
            </div>
            <dl class="facts">
                <dt>"Name"</dt><dd><code>{row.name.clone()}</code>" (its role's name too)"</dd>
                <dt>"URL"</dt>
                <dd>
                    <code class="database-url">{move || revealed().unwrap_or_else(|| hidden_url.clone())}</code>
                    {ready.then(|| view! {
                        <Show when=move || revealed().is_none()>
                            <ActionForm action=reveal attr:class="inline">
                                <input type="hidden" name="site" value=id.to_string()/>
                                <input type="hidden" name="kind" value=kind.as_str()/>
                                <button type="submit" class="secondary">"Show the password"</button>
                            </ActionForm>
                        </Show>
                    })}
                    <FormError error=reveal_error/>
                </dd>
                <dt>"In the site"</dt>
                <dd><code>"DATABASE_URL"</code>", "{kind.variables().join(", ")}</dd>
                <dt>"Size"</dt><dd>{row.size.clone().unwrap_or_else(|| "—".to_owned())}</dd>
                <dt>"Connections"</dt><dd>{row.connections.map_or_else(|| "—".to_owned(), |n| n.to_string())}</dd>
            </dl>
            {ready.then(|| view! {
                <div class="controls">
                    <a class="button secondary" href=format!("/sites/{id}/database?shell={}", kind.as_str())>"Database shell"</a>
                    <a class="button secondary" href=format!("/sites/{id}/databases/{}/dump", kind.as_str()) download="">"Download a dump"</a>
                    <ActionForm action=actions.rotate attr:class="inline">
                        <input type="hidden" name="site" value=id.to_string()/>
                        <input type="hidden" name="kind" value=kind.as_str()/>
                        <button type="submit" class="secondary">"Rotate the password"</button>
                    </ActionForm>
                </div>
                <FormError error=rotate_error/>
                <ActionForm action=actions.delete attr:class="form danger-zone">
                    <input type="hidden" name="site" value=id.to_string()/>
                    <input type="hidden" name="kind" value=kind.as_str()/>
                    <label>
                        {format!("Delete it and everything in it: type {} to confirm", row.name)}
                        <input type="text" name="confirm" autocomplete="off" required/>
                    </label>
                    <FieldError error=delete_error field="confirm"/>
                    <FormError error=delete_error/>
                    <button type="submit" class="danger">"Delete the database"</button>
                </ActionForm>
            })}
        </section>
    }
}

/// The SQL console: statements run as the site's own role.
#[component]
fn Console(
    id: i32,
    ready: Vec<(DatabaseKind, String)>,
    history: Vec<(DatabaseKind, String)>,
    last_run: Option<ConsoleRun>,
    run: ServerAction<RunSql>,
) -> impl IntoView {
    let error = failure(run.value());
    let first = ready[0].0;
    let role = ready[0].1.clone();
    let choose = ready.len() > 1;
    // The last statement run, to run again or change. None rather than "" when there is none:
    // the server renders no text node for an empty string, and hydration must find the same.
    let last = history
        .first()
        .map(|(_, sql)| sql.clone())
        .filter(|sql| !sql.is_empty());
    view! {
        <section class="card console" aria-labelledby="console-title">
            <h2 id="console-title">"SQL console"</h2>
            <ActionForm action=run attr:class="form editor-form" attr:data-editor="" attr:data-path="console.sql" attr:data-field="sql" attr:data-run-key="">
                <input type="hidden" name="site" value=id.to_string()/>
                {if choose {
                    view! {
                        <label>"Database "
                            <select name="kind">
                                {ready.iter().map(|(kind, _)| view! { <option value=kind.as_str()>{kind.label()}</option> }).collect_view()}
                            </select>
                        </label>
                    }.into_any()
                } else {
                    view! { <input type="hidden" name="kind" value=first.as_str()/> }.into_any()
                }}
                <textarea name="sql" rows="6" spellcheck="false" aria-label="SQL statements" required>
                    {last}
                </textarea>
                <div class="code-editor" data-code-editor=""></div>
                <button type="submit" class="primary">"Run"</button>
                <span class="hint">{format!(
                    " Ctrl-Enter or ⌘-Enter runs. As {role}, for at most {CONSOLE_TIMEOUT_SECS} s; the first {CONSOLE_ROWS} rows of each statement are shown."
                )}</span>
                <FormError error/>
                <FieldError error field="sql"/>
            </ActionForm>
            // The run just made here, or (a form sent without JavaScript, back on its page) the
            // one the server kept for it.
            {move || run.value().get().and_then(Result::ok).or_else(|| last_run.clone()).map(|out| view! { <RunOutput out/> })}
            {(!history.is_empty()).then(|| view! {
                <details class="history">
                    <summary>{format!("Your last {} statements", history.len())}</summary>
                    <ol>
                        {history.iter().map(|(kind, sql)| view! {
                            <li><span class="hint">{kind.label()}</span><pre>{sql.clone()}</pre></li>
                        }).collect_view()}
                    </ol>
                </details>
            })}
        </section>
    }
}

/// What a run gave: each statement's rows or count, then the error that stopped it.
#[component]
fn RunOutput(out: ConsoleRun) -> impl IntoView {
    view! {
        <div class="console-output" aria-live="polite">
            {out.results.into_iter().map(|result| view! { <ResultTable result/> }).collect_view()}
            {out.error.map(|e| view! {
                <div class="alert error" role="alert">
                    <strong>{e.message}</strong>
                    {e.at.map(|(line, column)| format!(" (line {line}, column {column})"))}
                    {(!e.code.is_empty()).then(|| view! { <span class="hint">{format!(" [{}]", e.code)}</span> })}
                </div>
            })}
            {out.truncated.then(|| view! {
                <p class="hint">"Some rows or columns were left out: the console shows at most 8 MiB and 200 columns per run."</p>
            })}
            <p class="hint">{format!("{} ms", out.millis)}</p>
        </div>
    }
}

#[component]
fn ResultTable(result: StatementResult) -> impl IntoView {
    if result.columns.is_empty() {
        return view! { <p class="result-count">{format!("Done: {} row(s).", result.affected)}</p> }
            .into_any();
    }
    let more = result.more_rows;
    view! {
        <div class="table-scroll">
            <table class="result">
                <thead><tr>{result.columns.into_iter().map(|c| view! { <th>{c}</th> }).collect_view()}</tr></thead>
                <tbody>
                    {result.rows.into_iter().map(|row| view! {
                        <tr>{row.into_iter().map(|value| view! { <td><Cell value/></td> }).collect_view()}</tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <p class="result-count">
            {if more > 0 {
                format!("{CONSOLE_ROWS} rows shown, and {more} more.")
            } else {
                "".to_owned()
            }}
        </p>
    }
    .into_any()
}

/// One value: NULL marked as such; a long one cut, the rest a click away.
#[component]
fn Cell(value: Value) -> impl IntoView {
    const SHOWN: usize = 200;
    match value {
        Value::Null => view! { <span class="null">"NULL"</span> }.into_any(),
        Value::Text { text, cut_from } if text.chars().count() > SHOWN || cut_from.is_some() => {
            let short: String = text.chars().take(SHOWN).collect();
            let note =
                cut_from.map(|n| format!(" (its beginning: it is {} long)", model::human_bytes(n as u64)));
            view! {
                <details class="wide">
                    <summary>{short}"…"</summary>
                    <pre>{text}</pre>
                    {note.map(|n| view! { <span class="hint">{n}</span> })}
                </details>
            }
            .into_any()
        }
        Value::Text { text, .. } => view! { <span>{text}</span> }.into_any(),
    }
}
