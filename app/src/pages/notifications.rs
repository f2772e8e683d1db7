//! The inbox behind the bell, the choice of what reaches one and how (with a test email), and
//! the admins' view of the outbox.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    AppError,
    api::{
        AddWebhook, Channel, ChoiceRow, InboxPage, MarkRead, RemoveWebhook, SendTestEmail,
        SetNotificationChoice, TestWebhook, WebhookRow, WebhookScope, deliveries, inbox,
        notification_choices, webhooks,
    },
    components::{ErrorPage, FieldError, FormError, SignedIn, failure, state_badge},
};

/// The signed-in person's notifications and choices.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let mark = ServerAction::<MarkRead>::new();
    let choose = ServerAction::<SetNotificationChoice>::new();
    let test = ServerAction::<SendTestEmail>::new();
    let add_hook = ServerAction::<AddWebhook>::new();
    let remove_hook = ServerAction::<RemoveWebhook>::new();
    let test_hook = ServerAction::<TestWebhook>::new();
    let hooks = Resource::new(
        move || {
            (
                add_hook.version().get(),
                remove_hook.version().get(),
                test_hook.version().get(),
            )
        },
        |_| webhooks(),
    );
    let items = Resource::new(move || mark.version().get(), |_| inbox());
    let choices = Resource::new(move || choose.version().get(), |_| notification_choices());
    view! {
        <Title text="Notifications"/>
        <SignedIn page=move |me| view! {
            <div class="page-head">
                <h1>"Notifications"</h1>
                <ActionForm action=mark attr:class="inline">
                    <input type="hidden" name="id" value=""/>
                    <button type="submit" class="secondary">"Mark all read"</button>
                </ActionForm>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading notifications…"</p> }>
                {move || Suspend::new(async move {
                    match items.await {
                        Ok(inbox) => view! { <InboxList inbox mark/> }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
            <Choices choices choose test/>
            <Webhooks hooks add=add_hook remove=remove_hook test=test_hook is_admin=me.is_admin/>
            {me.is_admin.then(|| view! {
                <p><a href="/admin/deliveries">"Every email and webhook Director sent or is retrying"</a></p>
            })}
        }/>
    }
}

#[component]
fn InboxList(inbox: InboxPage, mark: ServerAction<MarkRead>) -> impl IntoView {
    if inbox.items.is_empty() {
        return view! { <p class="empty">"Nothing yet."</p> }.into_any();
    }
    view! {
        <p class="hint" role="status">{format!("{} unread", inbox.unread)}</p>
        <ul class="inbox">
            {inbox.items.into_iter().map(|n| {
                let id = n.id.to_string();
                view! {
                    <li class=if n.read { "notice" } else { "notice unread" } data-notice=n.id>
                        <a href=n.link.clone()><strong>{n.subject.clone()}</strong></a>
                        <span class="hint">{format!(" {} UTC", n.at)}</span>
                        <p>{n.body.clone()}</p>
                        {(!n.read).then(|| view! {
                            <ActionForm action=mark attr:class="inline">
                                <input type="hidden" name="id" value=id/>
                                <button type="submit" class="link">"Mark read"</button>
                            </ActionForm>
                        })}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
    .into_any()
}

/// What reaches the person, event by event and channel by channel (each a button that turns
/// it on or off, so it works without JavaScript), and a test email.
#[component]
fn Choices(
    choices: Resource<Result<Vec<ChoiceRow>, AppError>>,
    choose: ServerAction<SetNotificationChoice>,
    test: ServerAction<SendTestEmail>,
) -> impl IntoView {
    let error = failure(choose.value());
    let test_error = failure(test.value());
    let outcome = move || test.value().get().and_then(Result::ok);
    view! {
        <section class="card" aria-labelledby="choices-title">
            <h2 id="choices-title">"What reaches you"</h2>
            <FormError error/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let rows = match choices.await {
                        Ok(rows) => rows,
                        Err(error) => return view! { <ErrorPage error/> }.into_any(),
                    };
                    view! {
                        <table class="list">
                            <thead>
                                <tr>
                                    <th scope="col">"When"</th>
                                    {Channel::ALL.iter().map(|c| view! { <th scope="col">{channel_name(*c)}</th> }).collect_view()}
                                </tr>
                            </thead>
                            <tbody>
                                {rows.into_iter().map(|row| view! {
                                    <tr data-event=row.event.as_str()>
                                        <td>{row.event.label()}</td>
                                        {row.channels.into_iter().map(|(channel, enabled)| {
                                            let label = format!("{}: {} {}", row.event.label(), channel_name(channel), if enabled { "on" } else { "off" });
                                            view! {
                                                <td>
                                                    <ActionForm action=choose attr:class="inline">
                                                        <input type="hidden" name="event" value=row.event.as_str()/>
                                                        <input type="hidden" name="channel" value=channel.as_str()/>
                                                        <input type="hidden" name="enabled" value=(!enabled).to_string()/>
                                                        <button type="submit" class=if enabled { "secondary on" } else { "secondary" }
                                                            aria-label=label aria-pressed=enabled.to_string()>
                                                            {if enabled { "On" } else { "Off" }}
                                                        </button>
                                                    </ActionForm>
                                                </td>
                                            }
                                        }).collect_view()}
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any()
                })}
            </Suspense>
            <ActionForm action=test attr:class="inline">
                <button type="submit" class="secondary">"Send me a test email"</button>
            </ActionForm>
            <FormError error=test_error/>
            {move || outcome().map(|o| view! {
                <p class=if o.sent { "alert ok" } else { "alert error" } role="status">
                    {if o.sent { "The mail server took it: " } else { "Not sent: " }}
                    {o.said}
                </p>
            })}
        </section>
    }
}

/// The person's webhooks (and for admins everyone's): each with a test and a remove button,
/// and a form that adds one and shows its secret once.
#[component]
fn Webhooks(
    hooks: Resource<Result<Vec<WebhookRow>, AppError>>,
    add: ServerAction<AddWebhook>,
    remove: ServerAction<RemoveWebhook>,
    test: ServerAction<TestWebhook>,
    is_admin: bool,
) -> impl IntoView {
    let add_error = failure(add.value());
    let remove_error = failure(remove.value());
    let test_error = failure(test.value());
    let added = move || add.value().get().and_then(Result::ok);
    let tested = move || test.value().get().and_then(Result::ok);
    view! {
        <section class="card" aria-labelledby="webhooks-title">
            <h2 id="webhooks-title">"Webhooks"</h2>
            <p class="hint">
                "Director POSTs each notification that reaches you by webhook as JSON, signed with HMAC-SHA256 in the "
                <code>"X-Director-Signature"</code>": "<code>"t=<time>,v1=<hex HMAC of \"<time>.<body>\">"</code>
                ". Director's guide "<code>"docs/notifications.md"</code>" shows how to check it."
            </p>
            <FormError error=remove_error/>
            <FormError error=test_error/>
            {move || tested().map(|o| view! {
                <p class=if o.sent { "alert ok" } else { "alert error" } role="status">
                    {if o.sent { "Delivered: " } else { "Not delivered: " }}
                    {o.said}
                </p>
            })}
            <Suspense fallback=|| view! { <p class="loading">"Loading webhooks…"</p> }>
                {move || Suspend::new(async move {
                    match hooks.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="empty">"No webhooks."</p> }.into_any(),
                        Ok(rows) => view! {
                            <table class="list">
                                <thead>
                                    <tr>
                                        <th scope="col">"URL"</th>
                                        <th scope="col">"Sent"</th>
                                        <th scope="col">"Added (UTC)"</th>
                                        <th scope="col">"Latest delivery"</th>
                                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|w| {
                                        let (test_id, remove_id) = (w.id.to_string(), w.id.to_string());
                                        let (test_label, remove_label) = (format!("Test {}", w.url), format!("Remove {}", w.url));
                                        view! {
                                            <tr data-webhook=w.id>
                                                <td><code>{w.url.clone()}</code></td>
                                                <td>{match w.scope {
                                                    WebhookScope::Mine => "Your notifications",
                                                    WebhookScope::Everyone => "Every event, everyone's",
                                                }}</td>
                                                <td>{w.added}</td>
                                                <td>
                                                    {match w.last_state {
                                                        Some(state) => state_badge(state).into_any(),
                                                        None => view! { <span class="hint">"none yet"</span> }.into_any(),
                                                    }}
                                                    " "
                                                    <span class="hint">{w.last_error}</span>
                                                </td>
                                                <td class="actions">
                                                    <ActionForm action=test attr:class="inline">
                                                        <input type="hidden" name="id" value=test_id/>
                                                        <button type="submit" class="secondary" aria-label=test_label>"Test"</button>
                                                    </ActionForm>
                                                    <ActionForm action=remove attr:class="inline">
                                                        <input type="hidden" name="id" value=remove_id/>
                                                        <button type="submit" class="danger" aria-label=remove_label>"Remove"</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
            <ActionForm action=add attr:class="form">
                <label for="webhook-url">"Endpoint URL"</label>
                <input id="webhook-url" type="url" name="url" required placeholder="https://chat.example.org/hooks/director"/>
                <FieldError error=add_error field="url"/>
                {if is_admin {
                    view! {
                        <label for="webhook-scope">"Sent"</label>
                        <select id="webhook-scope" name="scope">
                            <option value="Mine">"Your notifications, as chosen above"</option>
                            <option value="Everyone">"Every event, everyone's (admins)"</option>
                        </select>
                    }.into_any()
                } else {
                    view! { <input type="hidden" name="scope" value="Mine"/> }.into_any()
                }}
                <button type="submit" class="primary">"Add webhook"</button>
            </ActionForm>
            <FormError error=add_error/>
            {move || added().map(|a| view! {
                <div class="alert ok" role="status">
                    <p>{format!("Added {}. Its secret, shown only now: keep it where your endpoint checks signatures.", a.url)}</p>
                    <p><code data-secret="">{a.secret}</code></p>
                </div>
            })}
        </section>
    }
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Inbox => "Inbox",
        Channel::Email => "Email",
        Channel::Webhook => "Webhook",
    }
}

/// Every email and webhook delivery, with its attempts (admins only).
#[component]
pub fn AdminDeliveriesPage() -> impl IntoView {
    let rows = Resource::new(|| (), |()| deliveries());
    view! {
        <Title text="Deliveries"/>
        <SignedIn admin=true page=move |_| view! {
            <div class="page-head"><h1>"Deliveries"</h1></div>
            <p class="hint">"Emails and webhooks are retried with a growing wait for a day before they are given up."</p>
            <Suspense fallback=|| view! { <p class="loading">"Loading deliveries…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="empty">"Nothing was sent yet."</p> }.into_any(),
                        Ok(rows) => view! {
                            <table class="list">
                                <thead>
                                    <tr>
                                        <th scope="col">"Queued (UTC)"</th>
                                        <th scope="col">"To"</th>
                                        <th scope="col">"By"</th>
                                        <th scope="col">"Subject"</th>
                                        <th scope="col">"State"</th>
                                        <th scope="col">"Attempts"</th>
                                        <th scope="col">"Last error"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|d| view! {
                                        <tr data-delivery=d.id>
                                            <td>{d.queued}</td>
                                            <td>{match d.webhook {
                                                Some((origin, true)) => format!("everyone's webhook {origin}"),
                                                Some((origin, false)) => format!("{}'s webhook {origin}", d.username),
                                                None => d.username,
                                            }}</td>
                                            <td>{channel_name(d.channel)}</td>
                                            <td>{d.subject}</td>
                                            <td>{state_badge(d.state)}</td>
                                            <td>{d.attempts}</td>
                                            <td class="hint">{d.last_error}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
        }/>
    }
}
