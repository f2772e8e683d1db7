//! Requests for sites: "Request a site", "My requests", "Requests to review" (with the admins'
//! policy), and one request with its history and what the viewer may do to it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use model::account::Role;

use crate::{
    AppError,
    api::{
        ApprovalSteps, ApproveRequest, DenyRequest, RequestAction, RequestRow, SetSitePolicy, SiteCreation,
        SubmitRequest, WithdrawRequest, request_form, site_request, site_requests,
    },
    components::{ErrorPage, FieldError, FormError, SignedIn, failure, state_badge},
    pages::new_site::SiteFields,
};

/// The form that asks for a site.
#[component]
pub fn RequestSitePage() -> impl IntoView {
    view! {
        <Title text="Request a site"/>
        <SignedIn page=|_| {
            let submit = ServerAction::<SubmitRequest>::new();
            let error = failure(submit.value());
            let form = Resource::new(|| (), |()| request_form());
            view! {
                <div class="page-head"><h1>"Request a site"</h1></div>
                <ActionForm action=submit attr:class="card form" attr:aria-labelledby="request-title">
                    <h2 id="request-title" class="visually-hidden">"Request a site"</h2>
                    <FormError error/>
                    <SiteFields error/>
                    <label for="request-reason">"Why you want it"</label>
                    <textarea id="request-reason" name="reason" required maxlength="1000" rows="3"
                        aria-describedby="request-reason-hint"></textarea>
                    <p class="hint" id="request-reason-hint">"The approver reads this: say what the site is for and who it serves."</p>
                    <FieldError error field="reason"/>
                    <label for="request-approver">"Approver"</label>
                    <Suspense fallback=|| view! { <p class="loading">"Loading approvers…"</p> }>
                        {move || Suspend::new(async move {
                            let approvers = form.await.map(|f| f.approvers).unwrap_or_default();
                            view! {
                                <select id="request-approver" name="approver">
                                    <option value="">"Any approver"</option>
                                    {approvers.into_iter().map(|(username, name)| view! {
                                        <option value=username.clone()>{format!("{name} ({username})")}</option>
                                    }).collect_view()}
                                </select>
                            }
                        })}
                    </Suspense>
                    <FieldError error field="approver"/>
                    <button type="submit" class="primary">"Send the request"</button>
                </ActionForm>
            }
        }/>
    }
}

/// A list of requests, each a link to its page.
#[component]
fn RequestTable(rows: Vec<RequestRow>, caption: &'static str) -> impl IntoView {
    view! {
        <table class="list">
            <caption class="visually-hidden">{caption}</caption>
            <thead>
                <tr>
                    <th scope="col">"Site"</th>
                    <th scope="col">"Requested by"</th>
                    <th scope="col">"Approver"</th>
                    <th scope="col">"Submitted (UTC)"</th>
                    <th scope="col">"State"</th>
                </tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|r| view! {
                    <tr data-request=r.name.clone()>
                        <td><a href=format!("/requests/{}", r.id)>{r.name.clone()}</a></td>
                        <td>{r.requester.clone()}</td>
                        <td>{r.approver.clone().unwrap_or_else(|| "Any approver".to_owned())}</td>
                        <td>{r.submitted.clone()}</td>
                        <td>{state_badge(r.state)} " " <span class="hint">{r.state.label()}</span></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The signed-in member's requests.
#[component]
pub fn MyRequestsPage() -> impl IntoView {
    let rows = Resource::new(|| (), |()| site_requests("mine".to_owned()));
    view! {
        <Title text="My requests"/>
        <SignedIn page=move |_| view! {
            <div class="page-head">
                <h1>"My requests"</h1>
                <a class="button primary" href="/requests/new">"Request a site"</a>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading requests…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="empty">"You have asked for no site yet."</p> }.into_any(),
                        Ok(rows) => view! { <RequestTable rows caption="My requests"/> }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
        }/>
    }
}

/// The open requests the signed-in approver or admin may review; admins also set the policy.
#[component]
pub fn ReviewRequestsPage() -> impl IntoView {
    let set_policy = ServerAction::<SetSitePolicy>::new();
    let rows = Resource::new(|| (), |()| site_requests("review".to_owned()));
    let form = Resource::new(move || set_policy.version().get(), |_| request_form());
    view! {
        <Title text="Requests to review"/>
        <SignedIn page=move |me| {
            let admin = me.role == Role::Admin;
            view! {
                <div class="page-head"><h1>"Requests to review"</h1></div>
                <Suspense fallback=|| view! { <p class="loading">"Loading requests…"</p> }>
                    {move || Suspend::new(async move {
                        match rows.await {
                            Ok(rows) if rows.is_empty() => view! { <p class="empty">"Nothing waits for you."</p> }.into_any(),
                            Ok(rows) => view! { <RequestTable rows caption="Requests to review"/> }.into_any(),
                            Err(error) => view! { <ErrorPage error/> }.into_any(),
                        }
                    })}
                </Suspense>
                {admin.then(|| view! { <PolicyForm form set_policy/> })}
            }
        }/>
    }
}

/// The admins' choice of how members get sites.
#[component]
fn PolicyForm(
    form: Resource<Result<crate::api::RequestChoices, AppError>>,
    set_policy: ServerAction<SetSitePolicy>,
) -> impl IntoView {
    let error = failure(set_policy.value());
    let saved = move || matches!(set_policy.value().get(), Some(Ok(())));
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let Ok(policy) = form.await else { return ().into_any() };
                let requested = policy.creation == SiteCreation::Request;
                let one_step = policy.steps == ApprovalSteps::Approver;
                view! {
                    <ActionForm action=set_policy attr:class="card form" attr:aria-labelledby="policy-title">
                        <h2 id="policy-title">"How members get sites"</h2>
                        <Show when=saved>
                            <p class="alert ok" role="status">"Saved."</p>
                        </Show>
                        <FormError error/>
                        <fieldset>
                            <legend>"Members"</legend>
                            <label class="check"><input type="radio" name="creation" value="direct" checked=!requested/>" create sites themselves"</label>
                            <label class="check"><input type="radio" name="creation" value="request" checked=requested/>" request them, and the request is approved first"</label>
                        </fieldset>
                        <fieldset>
                            <legend>"A request is approved by"</legend>
                            <label class="check"><input type="radio" name="steps" value="approver-and-admin" checked=!one_step/>" an approver, then an admin"</label>
                            <label class="check"><input type="radio" name="steps" value="approver" checked=one_step/>" an approver (or an admin) alone"</label>
                        </fieldset>
                        <button type="submit" class="primary">"Save"</button>
                    </ActionForm>
                }
                .into_any()
            })}
        </Suspense>
    }
}

/// One request: what it asks, its history, and the viewer's part in it.
#[component]
pub fn RequestPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    let approve = ServerAction::<ApproveRequest>::new();
    let deny = ServerAction::<DenyRequest>::new();
    let withdraw = ServerAction::<WithdrawRequest>::new();
    let page = Resource::new(
        move || {
            (
                id(),
                approve.version().get(),
                deny.version().get(),
                withdraw.version().get(),
            )
        },
        |(id, ..)| async move {
            match id {
                Some(id) => site_request(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Title text="Request"/>
        <SignedIn page=move |me| {
            let reviewer = matches!(me.role, Role::Approver | Role::Admin);
            view! {
                <Suspense fallback=|| view! { <p class="loading">"Loading the request…"</p> }>
                    {move || Suspend::new(async move {
                        let data = match page.await {
                            Ok(data) => data,
                            Err(error) => return view! { <ErrorPage error/> }.into_any(),
                        };
                        let r = data.request.clone();
                        let open = r.state.is_open();
                        let review = (reviewer && open && !data.mine).then(|| view! { <Review id=r.id approve deny/> });
                        let take_back = (data.mine && open).then(|| view! {
                            <ActionForm action=withdraw attr:class="inline">
                                <input type="hidden" name="id" value=r.id.to_string()/>
                                <button type="submit" class="danger">"Withdraw the request"</button>
                            </ActionForm>
                        });
                        view! {
                            <div class="page-head">
                                <h1>{format!("Request for {}", r.name)}</h1>
                                {state_badge(r.state)}
                            </div>
                            <p class="hint" role="status">{r.state.label()}</p>
                            {r.site_id.map(|site| view! {
                                <p><a class="button primary" href=format!("/sites/{site}")>"Open the site"</a></p>
                            })}
                            <dl class="facts">
                                <dt>"Requested by"</dt><dd>{r.requester.clone()}</dd>
                                <dt>"Approver"</dt><dd>{r.approver.clone().unwrap_or_else(|| "Any approver".to_owned())}</dd>
                                <dt>"Type"</dt><dd>{format!("{} ({})", r.kind, r.image)}</dd>
                                <dt>"Purpose"</dt><dd>{r.purpose.clone()}</dd>
                                <dt>"Description"</dt><dd>{r.description.clone()}</dd>
                                <dt>"Why"</dt><dd class="prose">{r.reason.clone()}</dd>
                            </dl>
                            <section class="card" aria-labelledby="history-title">
                                <h2 id="history-title">"History"</h2>
                                <ol class="history">
                                    {data.steps.into_iter().map(|s| {
                                        let what = match s.action {
                                            RequestAction::Submit => "asked",
                                            RequestAction::Approve => "approved",
                                            RequestAction::Deny => "denied",
                                            RequestAction::Withdraw => "withdrew it",
                                        };
                                        view! {
                                            <li>
                                                <span class="hint">{format!("{} UTC", s.at)}</span> " "
                                                <strong>{s.who}</strong> " " {what}
                                                {(!s.comment.is_empty()).then(|| view! { <blockquote>{s.comment}</blockquote> })}
                                            </li>
                                        }
                                    }).collect_view()}
                                </ol>
                            </section>
                            {review}
                            {take_back}
                        }
                        .into_any()
                    })}
                </Suspense>
            }
        }/>
    }
}

/// Approve (with an optional comment) or deny (with the reason the requester reads).
#[component]
fn Review(id: i64, approve: ServerAction<ApproveRequest>, deny: ServerAction<DenyRequest>) -> impl IntoView {
    let approve_error = failure(approve.value());
    let deny_error = failure(deny.value());
    view! {
        <section class="card" aria-labelledby="review-title">
            <h2 id="review-title">"Your review"</h2>
            <ActionForm action=approve attr:class="form">
                <FormError error=approve_error/>
                <input type="hidden" name="id" value=id.to_string()/>
                <label for="approve-comment">"Comment " <span class="hint">"(optional)"</span></label>
                <textarea id="approve-comment" name="comment" maxlength="1000" rows="2"></textarea>
                <FieldError error=approve_error field="name"/>
                <button type="submit" class="primary">"Approve"</button>
            </ActionForm>
            <ActionForm action=deny attr:class="form">
                <FormError error=deny_error/>
                <input type="hidden" name="id" value=id.to_string()/>
                <label for="deny-comment">"Reason for a denial"</label>
                <textarea id="deny-comment" name="comment" maxlength="1000" rows="2"></textarea>
                <FieldError error=deny_error field="comment"/>
                <button type="submit" class="danger">"Deny"</button>
            </ActionForm>
        </section>
    }
}
