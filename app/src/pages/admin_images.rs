use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    AppError,
    api::{
        BuildPolicyView, CatalogueBuildRow, ImageRow, OnEngine, SaveImage, SetBuildPolicy, build_policy,
        catalogue, catalogue_builds,
    },
    components::{ErrorPage, FieldError, FormError, SignedIn, failure, state_badge, ticker},
};

/// Admin: the image catalogue — every image with how many sites use it, editable in place,
/// and a form to add one.
#[component]
pub fn AdminImagesPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let saved = RwSignal::new(0u32);
    let images = Resource::new(move || saved.get(), |_| catalogue());
    // While an image is being built its output is followed, once a second, alone: the forms
    // are drawn again only when a build ends (the image's reference changed).
    let building = StoredValue::new(false);
    let tick = ticker(std::time::Duration::from_secs(1), move || {
        building.try_get_value().unwrap_or(false)
    });
    let builds = Resource::new(move || (saved.get(), tick.get()), |_| catalogue_builds());
    Effect::new(move |was: Option<bool>| {
        let now = builds
            .get()
            .and_then(Result::ok)
            .is_some_and(|list| list.iter().any(|b| b.state.under_way()));
        building.set_value(now);
        if was == Some(true) && !now {
            saved.update(|n| *n += 1);
        }
        now
    });
    let set_policy = ServerAction::<SetBuildPolicy>::new();
    let policy = Resource::new(move || set_policy.version().get(), |_| build_policy());
    view! {
        <Title text="Images"/>
        <SignedIn admin=true page=move |_| view! {
            <ImagesAdmin saved images builds/>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match policy.await {
                        Ok(policy) => view! { <BuildPolicyForm policy set=set_policy/> }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
        }/>
    }
}

#[component]
fn ImagesAdmin(
    saved: RwSignal<u32>,
    images: Resource<Result<Vec<ImageRow>, AppError>>,
    builds: Resource<Result<Vec<CatalogueBuildRow>, AppError>>,
) -> impl IntoView {
    let blank = ImageRow {
        id: 0,
        name: String::new(),
        description: String::new(),
        reference: String::new(),
        serves_static: false,
        serves_dynamic: true,
        run_sh: "#!/bin/sh\nexec \n".to_owned(),
        enabled: true,
        allows_recipe: true,
        has_pip: false,
        has_npm: false,
        allows_dockerfile: false,
        sites: 0,
        on_engine: OnEngine::Missing,
    };
    view! {
        <div class="page-head"><h1>"Images"</h1></div>
        <p class="hint">"Sites run the image they were created with; a change here applies to a site when it is next fixed or its limits change."</p>
        <Suspense fallback=|| view! { <p class="loading">"Loading the catalogue…"</p> }>
            {move || {
                let blank = blank.clone();
                Suspend::new(async move {
                    match images.await {
                        Ok(list) => view! {
                            {list.into_iter().map(|image| view! { <ImageForm image saved builds/> }).collect_view()}
                            <ImageForm image=blank saved builds/>
                        }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn ImageForm(
    image: ImageRow,
    saved: RwSignal<u32>,
    builds: Resource<Result<Vec<CatalogueBuildRow>, AppError>>,
) -> impl IntoView {
    // Each form has its own action, so that its errors show under its own fields.
    let save = ServerAction::<SaveImage>::new();
    let error = failure(save.value());
    Effect::new(move || {
        if matches!(save.value().get(), Some(Ok(()))) {
            saved.update(|n| *n += 1);
        }
    });
    let ImageRow {
        id,
        name,
        description,
        reference,
        serves_static,
        serves_dynamic,
        run_sh,
        enabled,
        allows_recipe,
        has_pip,
        has_npm,
        allows_dockerfile,
        sites,
        on_engine,
    } = image;
    let new = id == 0;
    let key = if new { "new".to_owned() } else { id.to_string() };
    let field = move |name: &str| format!("{name}-{key}");
    let title = if new {
        "Add an image".to_owned()
    } else {
        format!("{name} — used by {sites} site(s)")
    };
    let marker = name.clone();
    let build_of = (id, name.clone());
    view! {
        <ActionForm action=save attr:class="card form image-form" attr:data-image=marker>
            <h2>{title}</h2>
            {(!new).then(|| view! { <p class="hint engine-state">{on_engine.describe()}</p> })}
            <input type="hidden" name="id" value=id.to_string()/>
            <label for=field("name")>"Name"</label>
            <input id=field("name") name="name" type="text" required maxlength="32" value=name/>
            <FieldError error=error field="name"/>
            <label for=field("reference")>"Docker image"</label>
            <input id=field("reference") name="reference" type="text" required=!new placeholder="director/python:3" value=reference/>
            <FieldError error=error field="reference"/>
            <label for=field("description")>"Description"</label>
            <input id=field("description") name="description" type="text" maxlength="500" value=description/>
            <FieldError error=error field="description"/>
            <label for=field("serves")>"Serves"</label>
            <select id=field("serves") name="serves">
                <option value="static" selected=serves_static && !serves_dynamic>"static sites"</option>
                <option value="dynamic" selected=!serves_static && serves_dynamic>"dynamic sites"</option>
                <option value="both" selected=serves_static && serves_dynamic>"static and dynamic sites"</option>
            </select>
            <FieldError error=error field="serves"/>
            <label for=field("run_sh")>"Starter run.sh"</label>
            <textarea id=field("run_sh") name="texts[run_sh]" rows="4" spellcheck="false">{run_sh}</textarea>
            <FieldError error=error field="run_sh"/>
            <label for=field("dockerfile")>{if new {
                "Or build it from this Dockerfile (then leave the reference above empty)"
            } else {
                "Build it anew from this Dockerfile (empty: keep its image)"
            }}</label>
            <textarea id=field("dockerfile") name="texts[dockerfile]" rows="4" maxlength="262144" spellcheck="false" placeholder="FROM director/debian:12"></textarea>
            <FieldError error=error field="dockerfile"/>
            <FormError error=error/>
            <label class="check"><input name="checks[enabled]" type="checkbox" value="on" checked=enabled/>" Offered to new sites"</label>
            <fieldset class="checks">
                <legend>"Sites' recipes on it"</legend>
                <label class="check"><input name="checks[recipe]" type="checkbox" value="on" checked=allows_recipe/>" Sites may add packages (a recipe)"</label>
                <label class="check"><input name="checks[pip]" type="checkbox" value="on" checked=has_pip/>" It has pip (Python packages)"</label>
                <label class="check"><input name="checks[npm]" type="checkbox" value="on" checked=has_npm/>" It has npm (Node packages)"</label>
                <label class="check"><input name="checks[dockerfile]" type="checkbox" value="on" checked=allows_dockerfile/>" Sites may build their own Dockerfile from it"</label>
            </fieldset>
            <button type="submit" class="primary">{if new { "Add image" } else { "Save" }}</button>
            {(!new).then(|| view! { <CatalogueBuild image=build_of builds/> })}
        </ActionForm>
    }
}

/// The latest build of a catalogue image from a Dockerfile, its output as it grows.
#[component]
fn CatalogueBuild(
    image: (i64, String),
    builds: Resource<Result<Vec<CatalogueBuildRow>, AppError>>,
) -> impl IntoView {
    let (id, name) = image;
    view! {
        <Transition fallback=|| ()>
            {move || {
                let name = name.clone();
                Suspend::new(async move {
                    let list = builds.await.unwrap_or_default();
                    list.into_iter().find(|b| b.image_id == id).map(|b| view! {
                        <section class="catalogue-build" aria-label=format!("Build {} of {name}", b.number)>
                            <h3>{format!("Build {} ", b.number)}{state_badge(b.state)}</h3>
                            {(!b.error.is_empty()).then(|| view! { <p class="error" role="alert">{b.error.clone()}</p> })}
                            <details>
                                <summary>"Its Dockerfile"</summary>
                                <pre class="output">{b.dockerfile.clone()}</pre>
                            </details>
                            <pre class="output build-log" data-state=b.state.as_str()>{b.log.clone()}</pre>
                        </section>
                    })
                })
            }}
        </Transition>
    }
}

/// How sites' images are built: limits, setup commands, which Debian packages.
#[component]
fn BuildPolicyForm(policy: BuildPolicyView, set: ServerAction<SetBuildPolicy>) -> impl IntoView {
    use model::build::AptRule;
    let error = failure(set.value());
    view! {
        <ActionForm action=set attr:class="card form build-policy">
            <h2>"Builds of sites' images"</h2>
            <p class="hint">"Each build of a site's recipe runs on the engine within these limits; one that runs over its time is cancelled and changes nothing."</p>
            <label for="build-time">"Time limit (seconds)"</label>
            <input id="build-time" name="time_limit_s" type="number" min="10" max="7200" value=policy.time_limit_s.to_string()/>
            <FieldError error field="time_limit_s"/>
            <label for="build-memory">"Memory (MiB)"</label>
            <input id="build-memory" name="memory_mb" type="number" min="64" max="2047" value=policy.memory_mb.to_string()/>
            <FieldError error field="memory_mb"/>
            <label for="build-cpu">"CPU (thousandths of a core)"</label>
            <input id="build-cpu" name="cpu_millis" type="number" min="100" max="64000" value=policy.cpu_millis.to_string()/>
            <FieldError error field="cpu_millis"/>
            <label class="check"><input name="setup" type="checkbox" value="on" checked=policy.setup_commands/>" Recipes may have setup commands (run as root while building)"</label>
            <label for="build-rule">"Debian packages"</label>
            <select id="build-rule" name="apt_rule">
                {AptRule::ALL.iter().map(|rule| view! {
                    <option value=rule.as_str() selected=*rule == policy.apt_rule>{rule.label()}</option>
                }).collect_view()}
            </select>
            <label for="build-list">"The packages listed"</label>
            <input id="build-list" name="apt_list" type="text" spellcheck="false" value=policy.apt_list.clone()/>
            <FieldError error field="apt_list"/>
            <FormError error/>
            <button type="submit" class="primary">"Save"</button>
        </ActionForm>
    }
}
