use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    AppError,
    api::{
        ImagePageData, RebuildSite, RecipeSource, RemoveVariable, RetryOperation, SaveRecipe, SetVariable,
        site_image,
    },
    components::{
        ErrorPage, FieldError, FormError, Operation, SignedIn, SiteTabs, failure, state_badge, ticker,
    },
};

/// A dynamic site's image and environment: its variables, its recipe (extra packages on its
/// catalogue image), its builds with their output, live while one runs.
#[component]
pub fn ImagePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
    // `?build=7` shows that build's output; the newest is shown otherwise.
    let query = use_query_map();
    let build = move || query.read().get("build").and_then(|b| b.parse::<i64>().ok());
    let actions = Actions::new();
    // While a build or an update is under way the page refreshes itself every second.
    let busy = StoredValue::new(false);
    let tick = ticker(std::time::Duration::from_secs(1), move || {
        busy.try_get_value().unwrap_or(false)
    });
    let page = Resource::new(
        move || (id(), build(), actions.version(), tick.get()),
        |(id, build, _, _)| async move {
            match id {
                Some(id) => site_image(id, build).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Title text="Image and environment"/>
        <SignedIn page=move |_| view! {
            <Transition fallback=|| view! { <p class="loading">"Loading the image…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(data) => {
                            busy.try_set_value(data.busy());
                            view! { <ImageView data actions/> }.into_any()
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
    save: ServerAction<SaveRecipe>,
    rebuild: ServerAction<RebuildSite>,
    set: ServerAction<SetVariable>,
    remove: ServerAction<RemoveVariable>,
    retry: ServerAction<RetryOperation>,
}

impl Actions {
    fn new() -> Self {
        Self {
            save: ServerAction::new(),
            rebuild: ServerAction::new(),
            set: ServerAction::new(),
            remove: ServerAction::new(),
            retry: ServerAction::new(),
        }
    }

    fn version(&self) -> usize {
        self.save.version().get()
            + self.rebuild.version().get()
            + self.set.version().get()
            + self.remove.version().get()
            + self.retry.version().get()
    }
}

#[component]
fn ImageView(data: ImagePageData, actions: Actions) -> impl IntoView {
    let id = data.card.id;
    view! {
        <div class="page-head">
            <h1>{data.card.name.clone()}</h1>
            {state_badge(data.card.state)}
        </div>
        <SiteTabs id current="image"/>
        <Variables id variables=data.variables.clone() actions/>
        <Recipe data=data.clone() actions/>
        <Builds data=data.clone()/>
        {(!data.operations.is_empty()).then(|| view! {
            <section aria-labelledby="image-ops-title">
                <h2 id="image-ops-title">"Deploys"</h2>
                <ol class="operations">
                    {data.operations.into_iter().map(|op| view! { <Operation op site=id retry=actions.retry/> }).collect_view()}
                </ol>
            </section>
        }.into_any())}
    }
}

#[component]
fn Variables(id: i32, variables: Vec<crate::api::VariableRow>, actions: Actions) -> impl IntoView {
    let set_error = failure(actions.set.value());
    let remove_error = failure(actions.remove.value());
    view! {
        <section class="card" aria-labelledby="env-title">
            <h2 id="env-title">"Environment variables"</h2>
            <p class="hint">
                "Given to run.sh and the terminal. A change replaces the site's process without downtime: the new one takes over once it answers. "
                <code>"PORT"</code>", "<code>"SITE_URL"</code>", "<code>"DATABASE_URL"</code>" and the databases' variables are Director's."
            </p>
            {if variables.is_empty() {
                view! { <p class="empty">"No variables yet."</p> }.into_any()
            } else {
                view! {
                    <table class="variables">
                        <thead><tr><th scope="col">"Name"</th><th scope="col">"Value"</th><th scope="col"><span class="visually-hidden">"Remove"</span></th></tr></thead>
                        <tbody>
                            {variables.into_iter().map(|v| {
                                let name = v.name.clone();
                                view! {
                                    <tr data-variable=v.name.clone()>
                                        <td><code>{v.name.clone()}</code></td>
                                        <td>{match v.value {
                                            Some(value) => view! { <code class="value">{value}</code> }.into_any(),
                                            None => view! { <span class="hint">"secret (hidden)"</span> }.into_any(),
                                        }}</td>
                                        <td>
                                            <ActionForm action=actions.remove attr:class="inline">
                                                <input type="hidden" name="site" value=id.to_string()/>
                                                <input type="hidden" name="name" value=name.clone()/>
                                                <button type="submit" class="secondary" aria-label=format!("Remove {name}")>"Remove"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            <FormError error=remove_error/>
            <ActionForm action=actions.set attr:class="stacked">
                <input type="hidden" name="site" value=id.to_string()/>
                <label>"Name"<input name="name" required maxlength="128" autocomplete="off" spellcheck="false" placeholder="GREETING"/></label>
                <FieldError error=set_error field="name"/>
                <label>"Value"<textarea name="value" rows="2" spellcheck="false"></textarea></label>
                <FieldError error=set_error field="value"/>
                <label class="check"><input type="checkbox" name="secret" value="on"/>" Secret: never shown again"</label>
                <FieldError error=set_error field="secret"/>
                <FormError error=set_error/>
                <button type="submit" class="primary">"Set the variable"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn Recipe(data: ImagePageData, actions: Actions) -> impl IntoView {
    let id = data.card.id;
    let save_error = failure(actions.save.value());
    let rebuild_error = failure(actions.rebuild.value());
    let running_own = data.running != data.base_reference;
    view! {
        <section class="card" aria-labelledby="recipe-title">
            <h2 id="recipe-title">"Image"</h2>
            <dl class="facts">
                <dt>"Starts from"</dt><dd>{data.base.clone()}" ("<code>{data.base_reference.clone()}</code>")"</dd>
                <dt>"Runs"</dt><dd><code class="running-image">{data.running.clone()}</code>{running_own.then_some(" (built from its recipe)")}</dd>
            </dl>
            {if data.allows_recipe || data.allows_dockerfile {
                let packages = data.source == RecipeSource::Packages;
                view! {
                    <p class="hint">"Director builds the site's image, then deploys it without downtime. A failed build leaves the running version as it is. The image runs run.sh like every site."</p>
                    <ActionForm action=actions.save attr:class="stacked recipe">
                        <input type="hidden" name="site" value=id.to_string()/>
                        {if data.allows_dockerfile {
                            view! {
                                <fieldset class="choice">
                                    <legend>"Build from"</legend>
                                    <label class="check"><input type="radio" name="recipe[source]" value="packages" checked=packages && data.allows_recipe disabled=!data.allows_recipe/>" Packages added to "{data.base.clone()}</label>
                                    <label class="check"><input type="radio" name="recipe[source]" value="dockerfile" checked=!packages || !data.allows_recipe/>" The site's own Dockerfile"</label>
                                </fieldset>
                            }.into_any()
                        } else {
                            view! { <input type="hidden" name="recipe[source]" value="packages"/> }.into_any()
                        }}
                        {if data.allows_recipe {
                            view! {
                                <fieldset class="choice">
                                <legend>{format!("Packages added to {} (when building from packages)", data.base)}</legend>
                                <PackageField offered=true label="Debian packages" name="apt" value=data.apt.clone() placeholder="jq curl" error=save_error/>
                                <PackageField offered=data.has_pip label="Python packages (pip)" name="pip" value=data.pip.clone() placeholder="flask==3.0.3" error=save_error/>
                                <PackageField offered=data.has_npm label="Node packages (npm)" name="npm" value=data.npm.clone() placeholder="express" error=save_error/>
                                <PackageField offered=data.setup_commands label="Setup commands (run as root while building, one per line)" name="setup" value=data.setup.clone() placeholder="" error=save_error/>
                                </fieldset>
                            }.into_any()
                        } else {
                            view! {
                                <input type="hidden" name="recipe[apt]" value=""/>
                                <input type="hidden" name="recipe[pip]" value=""/>
                                <input type="hidden" name="recipe[npm]" value=""/>
                                <input type="hidden" name="recipe[setup]" value=""/>
                            }.into_any()
                        }}
                        {if data.allows_dockerfile {
                            view! {
                                <fieldset class="choice">
                                <legend>"The site's Dockerfile (when building from it)"</legend>
                                <label>"Dockerfile (a path in the site's folder)"<input name="recipe[dockerfile]" value=data.dockerfile.clone() spellcheck="false" autocomplete="off" placeholder="Dockerfile"/></label>
                                <FieldError error=save_error field="dockerfile"/>
                                <label>"Context folder (sent to the build; .dockerignore is read)"<input name="recipe[context]" value=data.context.clone() spellcheck="false" autocomplete="off" placeholder="."/></label>
                                <FieldError error=save_error field="context"/>
                                </fieldset>
                            }.into_any()
                        } else {
                            view! {
                                <input type="hidden" name="recipe[dockerfile]" value=data.dockerfile.clone()/>
                                <input type="hidden" name="recipe[context]" value=data.context.clone()/>
                            }.into_any()
                        }}
                        <FormError error=save_error/>
                        <button type="submit" class="primary">"Save and build"</button>
                    </ActionForm>
                    <ActionForm action=actions.rebuild attr:class="inline">
                        <input type="hidden" name="site" value=id.to_string()/>
                        <button type="submit" class="secondary">"Build again"</button>
                    </ActionForm>
                    <FormError error=rebuild_error/>
                }.into_any()
            } else {
                view! { <p class="hint">"This catalogue image takes no recipe: an administrator decides which do."</p> }.into_any()
            }}
        </section>
    }
}

/// One field of the recipe form (`recipe[name]`): its input where the image offers it
/// (setup commands in a text area), an empty value otherwise (the form always sends every
/// field).
#[component]
fn PackageField(
    offered: bool,
    label: &'static str,
    name: &'static str,
    value: String,
    placeholder: &'static str,
    error: Signal<Option<AppError>>,
) -> impl IntoView {
    let input = format!("recipe[{name}]");
    match (offered, name) {
        (true, "setup") => view! {
            <label>{label}<textarea name=input rows="3" spellcheck="false">{value}</textarea></label>
            <FieldError error field=name/>
        }
        .into_any(),
        (true, _) => view! {
            <label>{label}<input name=input value=value spellcheck="false" autocomplete="off" placeholder=placeholder/></label>
            <FieldError error field=name/>
        }
        .into_any(),
        (false, _) => view! { <input type="hidden" name=input value=""/> }.into_any(),
    }
}

#[component]
fn Builds(data: ImagePageData) -> impl IntoView {
    let id = data.card.id;
    let shown_id = data.shown.as_ref().map(|(b, _)| b.id);
    (!data.builds.is_empty()).then(|| view! {
        <section class="card" aria-labelledby="builds-title">
            <h2 id="builds-title">"Builds"</h2>
            <ol class="builds">
                {data.builds.iter().map(|b| {
                    let here = (Some(b.id) == shown_id).then_some("page");
                    view! {
                        <li data-state=b.state.as_str()>
                            <a href=format!("/sites/{id}/image?build={}", b.id) aria-current=here>{format!("Build {}", b.number)}</a>
                            " " {state_badge(b.state)} " "
                            <span class="hint">{b.created.clone()}</span>
                        </li>
                    }
                }).collect_view()}
            </ol>
            {data.shown.clone().map(|(build, log)| view! {
                <h3>{format!("Build {} output", build.number)}</h3>
                {(!build.error.is_empty()).then(|| view! { <p class="error" role="alert">{build.error.clone()}</p> })}
                <pre class="output build-log" data-state=build.state.as_str()>{log}</pre>
            })}
        </section>
    })
}
