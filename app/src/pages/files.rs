use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    AppError,
    api::{DeletePath, FileRow, MakeFolder, MovePath, SaveFile, clean, list_files, open_file, site_detail},
    components::{ErrorPage, FieldError, FormError, SignedIn, SiteTabs, failure},
};

/// A site's files: the folder `?path=`, and the file `?open=` in the editor.
#[component]
pub fn FilesPage() -> impl IntoView {
    view! {
        <Title text="Files"/>
        <SignedIn page=|_| view! { <FilesView/> }/>
    }
}

#[component]
fn FilesView() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
    let path = move || clean(&query.read().get("path").unwrap_or_default());
    let open = move || {
        query
            .read()
            .get("open")
            .map(|p| clean(&p))
            .filter(|p| !p.is_empty())
    };
    let folder = ServerAction::<MakeFolder>::new();
    let moved = ServerAction::<MovePath>::new();
    let deleted = ServerAction::<DeletePath>::new();
    let save = ServerAction::<SaveFile>::new();
    let site = Resource::new(id, |id| async move {
        match id {
            Some(id) => site_detail(id).await,
            None => Err(AppError::NotFound),
        }
    });
    let listing = Resource::new(
        move || {
            (
                id(),
                path(),
                folder.version().get()
                    + moved.version().get()
                    + deleted.version().get()
                    + save.version().get(),
            )
        },
        |(id, path, _)| async move {
            match id {
                Some(id) => list_files(id, path).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    let file = Resource::new(
        move || (id(), open(), save.version().get()),
        |(id, open, _)| async move {
            match (id, open) {
                (Some(id), Some(path)) => open_file(id, path).await.map(Some),
                _ => Ok(None),
            }
        },
    );
    let row_error = Signal::derive(move || {
        failure(moved.value())
            .get()
            .or_else(|| failure(deleted.value()).get())
            .or_else(|| failure(folder.value()).get())
    });
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let site = match site.await {
                    Ok(site) => site,
                    Err(error) => return view! { <ErrorPage error/> }.into_any(),
                };
                let id = site.card.id;
                let here = path();
                let prefill = if here.is_empty() { String::new() } else { format!("{here}/") };
                let (crumbs, listed, hidden, prefill_file) = (here.clone(), here.clone(), here.clone(), prefill.clone());
                let rows = listing.await;
                let opened = file.await;
                view! {
                    <div class="page-head"><h1>{site.card.name.clone()}</h1></div>
                    <SiteTabs id current="files"/>
                    <Crumbs id path=crumbs/>
                    <FormError error=row_error/>
                    {match rows {
                        Ok(rows) => view! { <Listing id rows here=listed moved deleted/> }.into_any(),
                        Err(error) => view! { <p class="alert error">{error.to_string()}</p> }.into_any(),
                    }}
                    <div class="file-actions">
                        <ActionForm action=folder attr:class="inline-form">
                            <input type="hidden" name="site" value=id.to_string()/>
                            <label for="new-folder">"New folder"</label>
                            <input id="new-folder" name="path" type="text" required value=prefill/>
                            <button type="submit" class="secondary">"Make folder"</button>
                        </ActionForm>
                        <form method="get" class="inline-form">
                            <input type="hidden" name="path" value=hidden/>
                            <label for="new-file">"New file"</label>
                            <input id="new-file" name="open" type="text" required value=prefill_file/>
                            <button type="submit" class="secondary">"Create"</button>
                        </form>
                    </div>
                    {match (opened, open()) {
                        (Ok(Some(file)), _) => view! { <Editor id file save/> }.into_any(),
                        // A new file: the editor starts empty, and its first save creates it.
                        (Err(AppError::NotFound), Some(path)) => view! {
                            <Editor id file=crate::api::FileText { path, text: Some(String::new()), size: 0, version: String::new() } save/>
                        }.into_any(),
                        (Err(error), _) => view! { <p class="alert error">{error.to_string()}</p> }.into_any(),
                        (Ok(None), _) => ().into_any(),
                    }}
                }
                .into_any()
            })}
        </Suspense>
    }
}

#[component]
fn Crumbs(id: i32, path: String) -> impl IntoView {
    let mut so_far = String::new();
    let parts: Vec<(String, String)> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|part| {
            so_far = clean(&format!("{so_far}/{part}"));
            (part.to_owned(), so_far.clone())
        })
        .collect();
    view! {
        <nav class="crumbs" aria-label="Folder">
            <a href=format!("/sites/{id}/files")>"site"</a>
            {parts.into_iter().map(|(name, path)| view! {
                " / " <a href=format!("/sites/{id}/files?path={path}")>{name}</a>
            }).collect_view()}
        </nav>
    }
}

#[component]
fn Listing(
    id: i32,
    rows: Vec<FileRow>,
    here: String,
    moved: ServerAction<MovePath>,
    deleted: ServerAction<DeletePath>,
) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="hint">"This folder is empty."</p> }.into_any();
    }
    view! {
        <table class="list files">
            <thead><tr><th>"Name"</th><th>"Size"</th><th>"Mode"</th><th>"Changed (UTC)"</th><th></th></tr></thead>
            <tbody>
                {rows.into_iter().map(|row| {
                    let href = if row.dir {
                        format!("/sites/{id}/files?path={}", row.path)
                    } else {
                        format!("/sites/{id}/files?path={here}&open={}", row.path)
                    };
                    let label = if row.dir { format!("{}/", row.name) } else { row.name.clone() };
                    let marker = row.path.clone();
                    let (from, to, gone) = (row.path.clone(), row.path.clone(), row.path.clone());
                    let (move_label, delete_label) = (format!("New path of {}", row.name), format!("Delete {} for good", row.name));
                    view! {
                        <tr data-file=marker>
                            <td><a href=href>{label}</a>{row.link.then_some(" (link)")}</td>
                            <td>{if row.dir { String::new() } else { row.size.to_string() }}</td>
                            <td><code>{row.mode.clone()}</code></td>
                            <td>{row.modified.clone()}</td>
                            <td class="actions">
                                <details>
                                    <summary>"Rename or move"</summary>
                                    <ActionForm action=moved attr:class="inline-form">
                                        <input type="hidden" name="site" value=id.to_string()/>
                                        <input type="hidden" name="from" value=from/>
                                        <input name="to" type="text" required value=to aria-label=move_label/>
                                        <button type="submit" class="secondary">"Move"</button>
                                    </ActionForm>
                                </details>
                                <details>
                                    <summary>"Delete…"</summary>
                                    <ActionForm action=deleted attr:class="inline">
                                        <input type="hidden" name="site" value=id.to_string()/>
                                        <input type="hidden" name="path" value=gone/>
                                        <button type="submit" class="danger">{delete_label}</button>
                                    </ActionForm>
                                </details>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn Editor(id: i32, file: crate::api::FileText, save: ServerAction<SaveFile>) -> impl IntoView {
    let error = failure(save.value());
    let saved = move || matches!(save.value().get(), Some(Ok(_)));
    view! {
        <section class="card editor" aria-labelledby="editor-title">
            <h2 id="editor-title">{file.path.clone()}</h2>
            {match file.text {
                Some(text) => view! {
                    <ActionForm action=save attr:class="form editor-form" attr:data-editor="">
                        <input type="hidden" name="site" value=id.to_string()/>
                        <input type="hidden" name="path" value=file.path.clone()/>
                        <input type="hidden" name="version" value=file.version.clone()/>
                        <FormError error/>
                        <FieldError error field="path"/>
                        <Show when=saved><p class="alert ok" role="status">"Saved."</p></Show>
                        <p class="unsaved" data-unsaved hidden>"Unsaved changes"</p>
                        <textarea name="text" rows="24" spellcheck="false" aria-label="Contents">{text}</textarea>
                        <button type="submit" class="primary">"Save"</button>
                    </ActionForm>
                }.into_any(),
                None => view! {
                    <p class="hint">{format!("This file ({} bytes) is not text: it is shown read-only.", file.size)}</p>
                }.into_any(),
            }}
        </section>
    }
}
