use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use model::site::{BODY_LIMIT_MB, CPU_MILLIS, MEMORY_MB};

use crate::{
    AppError,
    api::{
        AddDomain, AddMember, Availability, CertificateView, DeleteSite, DomainRow, FixSite, LogLineView, Me,
        Proof, RemoveDomain, RemoveMember, RestartSite, RetryOperation, SetAvailability, SetLimits,
        SetServed, SiteKind, SitePageData, SiteState, VerifyDomain, site_detail, site_logs,
    },
    components::{
        CertificateStatus, ErrorPage, FieldError, FormError, Operation, SignedIn, SiteTabs, failure,
        state_badge, ticker,
    },
};

/// A site: its address, state, operations with their progress, and deletion.
#[component]
pub fn SitePage() -> impl IntoView {
    // The page's resource is made here, before the frame waits for the user: made inside the
    // frame's Suspense, the server could render its fallback while the browser, hydrating,
    // expects the site (a mismatch that left the page on "Loading the site…").
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
    let actions = Actions::new();
    // Not a signal: nothing re-renders when it changes; the ticker only consults it.
    let busy = StoredValue::new(true);
    // While an operation is under way the page refreshes itself (once hydrated) every second;
    // otherwise it stays still, so that nothing typed into its forms is lost.
    let tick = ticker(std::time::Duration::from_secs(1), move || {
        busy.try_get_value().unwrap_or(false)
    });
    let detail = Resource::new(
        move || (id(), actions.version(), tick.get()),
        |(id, _, _)| async move {
            match id {
                Some(id) => site_detail(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Title text="Site"/>
        <SignedIn page=move |me| view! { <SiteView me actions busy detail/> }/>
    }
}

/// The server actions whose completion refreshes the page.
#[derive(Clone, Copy)]
struct Actions {
    retry: ServerAction<RetryOperation>,
    served: ServerAction<SetServed>,
    restart: ServerAction<RestartSite>,
    add_member: ServerAction<AddMember>,
    remove_member: ServerAction<RemoveMember>,
    limits: ServerAction<SetLimits>,
    availability: ServerAction<SetAvailability>,
    fix: ServerAction<FixSite>,
    add_domain: ServerAction<AddDomain>,
    verify_domain: ServerAction<VerifyDomain>,
    remove_domain: ServerAction<RemoveDomain>,
}

impl Actions {
    fn new() -> Self {
        Self {
            retry: ServerAction::new(),
            served: ServerAction::new(),
            restart: ServerAction::new(),
            add_member: ServerAction::new(),
            remove_member: ServerAction::new(),
            limits: ServerAction::new(),
            availability: ServerAction::new(),
            fix: ServerAction::new(),
            add_domain: ServerAction::new(),
            verify_domain: ServerAction::new(),
            remove_domain: ServerAction::new(),
        }
    }

    /// Changes whenever one of them finishes.
    fn version(&self) -> usize {
        self.retry.version().get()
            + self.served.version().get()
            + self.restart.version().get()
            + self.add_member.version().get()
            + self.remove_member.version().get()
            + self.limits.version().get()
            + self.availability.version().get()
            + self.fix.version().get()
            + self.add_domain.version().get()
            + self.verify_domain.version().get()
            + self.remove_domain.version().get()
    }

    /// The first failure among the controls at the top of the page.
    fn control_error(&self) -> Signal<Option<AppError>> {
        let errors = [
            failure(self.served.value()),
            failure(self.restart.value()),
            failure(self.availability.value()),
            failure(self.fix.value()),
            failure(self.remove_member.value()),
        ];
        Signal::derive(move || errors.iter().find_map(|e| e.get()))
    }
}

#[component]
fn SiteView(
    me: Me,
    actions: Actions,
    busy: StoredValue<bool>,
    detail: Resource<Result<SitePageData, AppError>>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading the site…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(site) => {
                        busy.try_set_value(site.busy());
                        view! { <SiteBody site actions is_admin=me.is_admin/> }.into_any()
                    }
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn SiteBody(site: SitePageData, actions: Actions, is_admin: bool) -> impl IntoView {
    let Actions {
        retry,
        served,
        restart,
        ..
    } = actions;
    let delete = ServerAction::<DeleteSite>::new();
    let delete_error = failure(delete.value());
    let control_error = actions.control_error();
    let on_air = site.availability == Availability::Enabled;
    let dynamic = site.card.kind == SiteKind::Dynamic;
    let id = site.card.id;
    let deleting = site.card.state == SiteState::Deleting;
    view! {
        <div class="page-head">
            <h1>{site.card.name.clone()}</h1>
            {state_badge(site.card.state)}
        </div>
        <SiteTabs id current="overview"/>
        <p><a class="site-url" href=site.card.url.clone() rel="noopener">{site.card.url.clone()}</a></p>
        <FormError error=control_error/>
        {(!deleting && site.availability != Availability::Disabled).then(|| view! {
            <div class="controls">
                <ActionForm action=served attr:class="inline">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <input type="hidden" name="served" value=(!on_air).to_string()/>
                    <button type="submit" class="secondary">{if on_air { "Take off the air" } else { "Serve again" }}</button>
                </ActionForm>
                {(dynamic && on_air).then(|| view! {
                    <ActionForm action=restart attr:class="inline">
                        <input type="hidden" name="id" value=id.to_string()/>
                        <button type="submit" class="secondary">"Restart"</button>
                    </ActionForm>
                })}
            </div>
        })}
        {site.disk_full.then(|| view! {
            <p class="alert error" role="alert">
                "This site's files take all the disk they may ("
                {site.disk.clone()}
                "): the file manager and SFTP save nothing more until some are deleted."
            </p>
        })}
        <dl class="facts">
            <dt>"Type"</dt><dd>{site.card.kind.as_str()}</dd>
            <dt>"Image"</dt><dd>{site.image.clone()}</dd>
            <dt>"Purpose"</dt><dd>{site.purpose.as_str()}</dd>
            <dt>"Availability"</dt><dd>{site.availability.as_str()}</dd>
            <dt>"Limits"</dt><dd>{format!("{} CPU, {} MiB memory, {} MiB uploads", f64::from(site.cpu_millis) / 1000.0, site.memory_mb, site.body_limit_mb)}</dd>
            <dt>"Disk"</dt><dd>{site.disk.clone().unwrap_or_else(|| "not measured yet".to_owned())}</dd>
            <dt>"Created"</dt><dd>{site.created.clone()}</dd>
            <dt>"Description"</dt><dd>{site.card.description.clone()}</dd>
        </dl>
        {dynamic.then(|| view! { <Logs id initial=site.logs.clone()/> })}
        <Members id members=site.members.clone() actions/>
        <Domains id domains=site.domains.clone() actions is_admin/>
        {(!site.certificates.is_empty()).then(|| view! { <Certificates certificates=site.certificates.clone()/> })}
        {(is_admin && !deleting).then(|| view! { <AdminControls site=site.clone() actions/> })}
        <section aria-labelledby="ops-title">
            <h2 id="ops-title">"Operations"</h2>
            <ol class="operations">
                {site.operations.into_iter().map(|op| view! { <Operation op site=id retry/> }).collect_view()}
            </ol>
        </section>
        {(!deleting).then(|| view! {
            <ActionForm action=delete attr:class="card form danger-zone" attr:aria-labelledby="delete-title">
                <h2 id="delete-title">"Delete this site"</h2>
                <p>"Its files, service and address go away for good."</p>
                <FormError error=delete_error/>
                <input type="hidden" name="id" value=id.to_string()/>
                <label for="confirm">"Type " <strong>{site.card.name.clone()}</strong> " to confirm"</label>
                <input id="confirm" name="confirm" type="text" autocomplete="off" required/>
                <FieldError error=delete_error field="confirm"/>
                <button type="submit" class="danger">"Delete site"</button>
            </ActionForm>
        })}
    }
}

/// The newest lines of the site's output, as rendered with the page; once hydrated, read again
/// every two seconds, across restarts and updates (they are read per service, not per task).
/// The live copy is a local resource: it never runs on the server, so the hydrating page starts
/// from exactly the lines the server rendered.
#[component]
fn Logs(id: i32, initial: Vec<LogLineView>) -> impl IntoView {
    let tick = ticker(std::time::Duration::from_secs(2), || true);
    let live = LocalResource::new(move || {
        tick.track();
        site_logs(id)
    });
    // `try_get`: a render racing the page's disposal sees the lines it was given.
    let lines = move || match live.try_get().flatten() {
        Some(Ok(lines)) => lines,
        _ => initial.clone(),
    };
    let error = move || match live.try_get().flatten() {
        Some(Err(error)) => Some(view! { <p class="alert error">{error.to_string()}</p> }),
        _ => None,
    };
    view! {
        <section aria-labelledby="logs-title">
            <h2 id="logs-title">"Output"</h2>
            {error}
            {move || {
                let lines = lines();
                if lines.is_empty() {
                    view! { <p class="hint">"Nothing written yet."</p> }.into_any()
                } else {
                    view! {
                        <ol class="logs" aria-live="polite">
                            {lines.into_iter().map(|l| view! {
                                <li class:stderr=l.stderr>
                                    <time>{l.at}</time>
                                    {l.stderr.then(|| view! { <span class="stream">"stderr"</span> })}
                                    <span class="text">{l.text}</span>
                                </li>
                            }).collect_view()}
                        </ol>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// Who manages the site: add by username, remove (a site keeps one member at least).
#[component]
fn Members(id: i32, members: Vec<(i64, String)>, actions: Actions) -> impl IntoView {
    let add = actions.add_member;
    let remove = actions.remove_member;
    let add_error = failure(add.value());
    view! {
        <section class="card" aria-labelledby="members-title">
            <h2 id="members-title">"Members"</h2>
            <ul class="members">
                {members.into_iter().map(|(user, name)| view! {
                    <li>
                        <span>{name.clone()}</span>
                        <ActionForm action=remove attr:class="inline">
                            <input type="hidden" name="site" value=id.to_string()/>
                            <input type="hidden" name="user" value=user.to_string()/>
                            <button type="submit" class="link" aria-label=format!("Remove {name}")>"Remove"</button>
                        </ActionForm>
                    </li>
                }).collect_view()}
            </ul>
            <ActionForm action=add attr:class="form inline-form">
                <input type="hidden" name="site" value=id.to_string()/>
                <label for="member-username">"Add a member by username"</label>
                <input id="member-username" name="username" type="text" autocomplete="off" required/>
                <button type="submit" class="secondary">"Add"</button>
                <FieldError error=add_error field="username"/>
                <FormError error=add_error/>
            </ActionForm>
        </section>
    }
}

/// The site's domains of its own: each with its state, and until it is verified, what to set
/// in its DNS; adding one; removing one.
#[component]
fn Domains(id: i32, domains: Vec<DomainRow>, actions: Actions, is_admin: bool) -> impl IntoView {
    let add = actions.add_domain;
    let verify = actions.verify_domain;
    let remove = actions.remove_domain;
    let add_error = failure(add.value());
    // The box empties once a domain is added, ready for the next.
    let host_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(())))
            && let Some(input) = host_input.get()
        {
            input.set_value("");
        }
    });
    let row_error = Signal::derive(move || {
        failure(verify.value())
            .get()
            .or_else(|| failure(remove.value()).get())
    });
    let site = id.to_string();
    view! {
        <section class="card" aria-labelledby="domains-title">
            <h2 id="domains-title">"Domains"</h2>
            <FormError error=row_error/>
            {domains.is_empty().then(|| view! {
                <p class="hint">"The site has its own address only. Add a domain of yours to reach it there too."</p>
            })}
            <ul class="domains">
                {domains.into_iter().map(|d| {
                    let (site_verify, site_remove) = (site.clone(), site.clone());
                    let (id_verify, id_remove) = (d.id.to_string(), d.id.to_string());
                    let remove_label = format!("Remove {}", d.host);
                    view! {
                        <li data-domain=d.host.clone()>
                            <div class="page-head">
                                <strong>{d.host.clone()}</strong>
                                {if d.verified {
                                    view! { <span class="badge ok">{if d.verified_by == Proof::Admin { "added by an admin" } else { "verified" }}</span> }.into_any()
                                } else {
                                    view! { <span class="badge busy">"waiting for verification"</span> }.into_any()
                                }}
                                <ActionForm action=remove attr:class="inline">
                                    <input type="hidden" name="site" value=site_remove/>
                                    <input type="hidden" name="domain" value=id_remove/>
                                    <button type="submit" class="link" aria-label=remove_label>"Remove"</button>
                                </ActionForm>
                            </div>
                            {d.host.strip_prefix("*.").map(|domain| view! {
                                <p class="hint">{format!("Every name one level under {domain} reaches the site; each gets its certificate on its first visit.")}</p>
                            })}
                            {(!d.verified).then(|| view! {
                                <ol class="steps">
                                    <li>"Point " <code>{d.host.clone()}</code> " at the sites: a CNAME record to "
                                        <code>{d.target.clone()}</code> " (or the same A/AAAA records it has)."</li>
                                    <li>"Prove it is yours: a TXT record at " <code>{d.txt_name.clone()}</code>
                                        " holding " <code class="token">{d.txt_value.clone()}</code> "."</li>
                                    <li>"Verify. DNS changes can take a few minutes to be seen."</li>
                                </ol>
                                {(!d.last_check_error.is_empty()).then(|| view! {
                                    <p class="alert error">{format!("Checked {} UTC: {}", d.last_check, d.last_check_error)}</p>
                                })}
                                <ActionForm action=verify attr:class="inline">
                                    <input type="hidden" name="site" value=site_verify/>
                                    <input type="hidden" name="domain" value=id_verify/>
                                    <button type="submit" class="secondary">"Verify now"</button>
                                </ActionForm>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <ActionForm action=add attr:class="form inline-form">
                <input type="hidden" name="site" value=id.to_string()/>
                <label for="domain-host">"Add a domain"</label>
                <input id="domain-host" node_ref=host_input name="host" type="text" autocomplete="off" placeholder="www.example.org" required/>
                <button type="submit" class="secondary">"Add domain"</button>
                <FieldError error=add_error field="host"/>
                <FormError error=add_error/>
                {is_admin.then(|| view! {
                    <p class="hint">"As an admin, the domains you add are routed at once, without verification."</p>
                })}
            </ActionForm>
        </section>
    }
}

/// Each host's certificate: the site's own name and its verified domains.
#[component]
fn Certificates(certificates: Vec<CertificateView>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="https-title">
            <h2 id="https-title">"HTTPS"</h2>
            <p class="hint">"Every address of the site gets its certificate automatically, and it is renewed before it expires. Plain HTTP moves to HTTPS once an address has one."</p>
            <table class="list certificates">
                <thead><tr><th>"Address"</th><th>"Certificate"</th></tr></thead>
                <tbody>
                    {certificates.into_iter().map(|c| {
                        let (host, shown) = (c.host.clone(), c.host.clone());
                        view! {
                            <tr data-host=host>
                                <td><code>{shown}</code></td>
                                <td><CertificateStatus certificate=c/></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// What only admins see: limits, disabling, fixing.
#[component]
fn AdminControls(site: SitePageData, actions: Actions) -> impl IntoView {
    let id = site.card.id;
    let limits = actions.limits;
    let limits_error = failure(limits.value());
    let availability_error = failure(actions.availability.value());
    let disabled = site.availability == Availability::Disabled;
    view! {
        <section class="card" aria-labelledby="admin-title">
            <h2 id="admin-title">"Administration"</h2>
            <ActionForm action=limits attr:class="form limits">
                <input type="hidden" name="id" value=id.to_string()/>
                <label for="cpu_millis">"CPU (thousandths of a core)"</label>
                <input id="cpu_millis" name="cpu_millis" type="number" min=CPU_MILLIS.start().to_string() max=CPU_MILLIS.end().to_string() value=site.cpu_millis.to_string() required/>
                <FieldError error=limits_error field="cpu_millis"/>
                <label for="memory_mb">"Memory (MiB)"</label>
                <input id="memory_mb" name="memory_mb" type="number" min=MEMORY_MB.start().to_string() max=MEMORY_MB.end().to_string() value=site.memory_mb.to_string() required/>
                <FieldError error=limits_error field="memory_mb"/>
                <label for="body_limit_mb">"Largest upload (MiB)"</label>
                <input id="body_limit_mb" name="body_limit_mb" type="number" min=BODY_LIMIT_MB.start().to_string() max=BODY_LIMIT_MB.end().to_string() value=site.body_limit_mb.to_string() required/>
                <FieldError error=limits_error field="body_limit_mb"/>
                <FormError error=limits_error/>
                <button type="submit">"Save limits"</button>
            </ActionForm>
            <ActionForm action=actions.availability attr:class="form">
                <input type="hidden" name="id" value=id.to_string()/>
                <input type="hidden" name="availability"
                    value=if disabled { Availability::Enabled.as_str() } else { Availability::Disabled.as_str() }/>
                <label for="availability-reason">
                    {if disabled { "Why it is enabled again (optional; its members are told)" } else { "Why it is disabled (its members are told)" }}
                </label>
                <input id="availability-reason" name="reason" type="text" maxlength="500" required=!disabled/>
                <FieldError error=availability_error field="reason"/>
                <button type="submit" class=if disabled { "secondary" } else { "danger" }>
                    {if disabled { "Enable site" } else { "Disable site" }}
                </button>
            </ActionForm>
            <div class="controls">
                <ActionForm action=actions.fix attr:class="inline">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <button type="submit" class="secondary">"Fix site"</button>
                </ActionForm>
            </div>
        </section>
    }
}
