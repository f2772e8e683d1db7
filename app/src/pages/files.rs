use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    AppError,
    api::{
        DeletePath, FileRow, FileText, MakeFolder, MovePath, SaveFile, SetMode, TreeRow, UploadLimits, clean,
        file_limits, folder_tree, list_files, open_file, site_detail, url_encode,
    },
    components::{ErrorPage, FieldError, FormError, SignedIn, SiteTabs, failure},
};

/// A site's files: the folder `?path=`, and the file `?open=` in the editor.
#[component]
pub fn FilesPage() -> impl IntoView {
    let page = FilesState::new();
    view! {
        <Title text="Files"/>
        <SignedIn page=move |_| view! { <FilesView page/> }/>
    }
}

/// The actions that change the folder: each refreshes the listing and the tree.
#[derive(Clone, Copy)]
struct Changes {
    folder: ServerAction<MakeFolder>,
    moved: ServerAction<MovePath>,
    deleted: ServerAction<DeletePath>,
    mode: ServerAction<SetMode>,
    save: ServerAction<SaveFile>,
}

impl Changes {
    fn version(self) -> usize {
        self.folder.version().get()
            + self.moved.version().get()
            + self.deleted.version().get()
            + self.mode.version().get()
            + self.save.version().get()
    }

    fn error(self) -> Signal<Option<AppError>> {
        Signal::derive(move || {
            failure(self.moved.value())
                .get()
                .or_else(|| failure(self.deleted.value()).get())
                .or_else(|| failure(self.folder.value()).get())
                .or_else(|| failure(self.mode.value()).get())
        })
    }
}

/// Everything the page reads, made before the frame waits for the user: made inside a
/// Suspense's children, resources get their ids in the order parts of the page finish
/// streaming, which differs between server and browser, and hydration mismatches.
#[derive(Clone, Copy)]
struct FilesState {
    here: Memo<String>,
    open: Memo<Option<String>>,
    changes: Changes,
    site: Resource<Result<crate::api::SitePageData, AppError>>,
    tree: Resource<Result<Vec<TreeRow>, AppError>>,
    listing: Resource<Result<Vec<FileRow>, AppError>>,
    limits: Resource<Result<UploadLimits, AppError>>,
    file: Resource<Result<Option<FileText>, AppError>>,
}

impl FilesState {
    fn new() -> Self {
        let params = use_params_map();
        let query = use_query_map();
        let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
        let here = Memo::new(move |_| clean(&query.read().get("path").unwrap_or_default()));
        let open = Memo::new(move |_| {
            query
                .read()
                .get("open")
                .map(|p| clean(&p))
                .filter(|p| !p.is_empty())
        });
        let changes = Changes {
            folder: ServerAction::new(),
            moved: ServerAction::new(),
            deleted: ServerAction::new(),
            mode: ServerAction::new(),
            save: ServerAction::new(),
        };
        let site = Resource::new(id, |id| async move {
            match id {
                Some(id) => site_detail(id).await,
                None => Err(AppError::NotFound),
            }
        });
        let tree = Resource::new(
            move || (id(), here.get(), changes.version()),
            |(id, path, _)| async move { folder_tree(id.ok_or(AppError::NotFound)?, path).await },
        );
        let listing = Resource::new(
            move || (id(), here.get(), changes.version()),
            |(id, path, _)| async move { list_files(id.ok_or(AppError::NotFound)?, path).await },
        );
        let limits = Resource::new(|| (), |_| file_limits());
        let file = Resource::new(
            move || (id(), open.get()),
            |(id, open)| async move {
                match (id, open) {
                    (Some(id), Some(path)) => open_file(id, path).await.map(Some),
                    _ => Ok(None),
                }
            },
        );
        Self {
            here,
            open,
            changes,
            site,
            tree,
            listing,
            limits,
            file,
        }
    }
}

#[component]
fn FilesView(page: FilesState) -> impl IntoView {
    let FilesState {
        here,
        open,
        changes,
        site,
        tree,
        listing,
        limits,
        file,
    } = page;
    let folder = FolderView { here, tree, listing };
    // Each part below waits in its own Suspense: saving a file refreshes the listing without
    // rebuilding the editor (its cursor and undo history stay).
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match site.await {
                    Ok(site) => {
                        let id = site.card.id;
                        view! {
                            <div class="page-head"><h1>{site.card.name.clone()}</h1></div>
                            <SiteTabs id current="files"/>
                            <div class="files-layout">
                                <Tree id folder/>
                                <div class="files-main">
                                    <Folder id folder changes/>
                                    <Upload id here limits/>
                                    <Opened id open file save=changes.save/>
                                </div>
                            </div>
                        }
                        .into_any()
                    }
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The folder shown, and what is listed of it.
#[derive(Clone, Copy)]
struct FolderView {
    here: Memo<String>,
    tree: Resource<Result<Vec<TreeRow>, AppError>>,
    listing: Resource<Result<Vec<FileRow>, AppError>>,
}

fn folder_href(id: i32, path: &str) -> String {
    if path.is_empty() {
        format!("/sites/{id}/files")
    } else {
        format!("/sites/{id}/files?path={}", url_encode(path))
    }
}

fn open_href(id: i32, here: &str, path: &str) -> String {
    let folder = if here.is_empty() {
        String::new()
    } else {
        format!("path={}&", url_encode(here))
    };
    format!("/sites/{id}/files?{folder}open={}", url_encode(path))
}

fn download_href(id: i32, path: &str) -> String {
    format!("/sites/{id}/files/download?path={}", url_encode(path))
}

#[component]
fn Tree(id: i32, folder: FolderView) -> impl IntoView {
    let FolderView { here, tree, .. } = folder;
    view! {
        <nav class="tree" aria-label="Folders">
            <a href=folder_href(id, "") aria-current=move || here.get().is_empty().then_some("page")>"site/"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    tree.await.map(|rows| view! {
                        <ul>
                            {rows.into_iter().map(|row: TreeRow| view! {
                                <li style=format!("padding-left: {}rem", row.depth + 1)>
                                    <a href=folder_href(id, &row.path) aria-current=row.current.then_some("page")>
                                        {format!("{}/", row.name)}
                                    </a>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any()).unwrap_or_else(|_| ().into_any())
                })}
            </Suspense>
        </nav>
    }
}

#[component]
fn Folder(id: i32, folder: FolderView, changes: Changes) -> impl IntoView {
    let FolderView { here, listing, .. } = folder;
    let query = use_query_map();
    // What a plain (JavaScript-less) upload came back with.
    let uploaded = move || {
        let q = query.read();
        let count = |key: &str| q.get(key).and_then(|n| n.parse::<usize>().ok());
        match (count("uploaded"), count("refused")) {
            (Some(saved), Some(0) | None) => Some(("alert ok", format!("{saved} file(s) uploaded."))),
            (saved, Some(refused)) => Some((
                "alert error",
                format!(
                    "{} file(s) uploaded; {refused} refused (too large, or a name already taken).",
                    saved.unwrap_or(0)
                ),
            )),
            (None, None) => None,
        }
    };
    let error = changes.error();
    view! {
        <Crumbs id here/>
        {move || uploaded().map(|(class, text)| view! { <p class=class role="status">{text}</p> })}
        <FormError error/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let here = here.get_untracked();
                match listing.await {
                    Ok(rows) => view! { <Listing id rows here changes/> }.into_any(),
                    Err(error) => view! { <p class="alert error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
        <div class="file-actions">
            <ActionForm action=changes.folder attr:class="inline-form">
                <input type="hidden" name="site" value=id.to_string()/>
                <label for="new-folder">"New folder"</label>
                <input id="new-folder" name="path" type="text" required prop:value=move || prefix(&here.get())/>
                <button type="submit" class="secondary">"Make folder"</button>
            </ActionForm>
            <form method="get" class="inline-form">
                <input type="hidden" name="path" prop:value=move || here.get()/>
                <label for="new-file">"New file"</label>
                <input id="new-file" name="open" type="text" required prop:value=move || prefix(&here.get())/>
                <button type="submit" class="secondary">"Create"</button>
            </form>
        </div>
    }
}

fn prefix(here: &str) -> String {
    if here.is_empty() {
        String::new()
    } else {
        format!("{here}/")
    }
}

#[component]
fn Crumbs(id: i32, here: Memo<String>) -> impl IntoView {
    move || {
        let path = here.get();
        let mut so_far = String::new();
        let parts: Vec<(String, String)> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|part| {
                so_far = clean(&format!("{so_far}/{part}"));
                (part.to_owned(), so_far.clone())
            })
            .collect();
        let zip_label = if path.is_empty() {
            "Download the site's files (zip)".to_owned()
        } else {
            format!("Download {path} (zip)")
        };
        view! {
            <div class="crumbs-bar">
                <nav class="crumbs" aria-label="Folder">
                    <a href=folder_href(id, "")>"site"</a>
                    {parts.into_iter().map(|(name, path)| view! {
                        " / " <a href=folder_href(id, &path)>{name}</a>
                    }).collect_view()}
                </nav>
                <a class="download" href=download_href(id, &path) download="">{zip_label}</a>
            </div>
        }
    }
}

#[component]
fn Listing(id: i32, rows: Vec<FileRow>, here: String, changes: Changes) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="hint">"This folder is empty. Drop files here to upload them."</p> }
            .into_any();
    }
    view! {
        <table class="list files">
            <thead><tr><th>"Name"</th><th>"Size"</th><th>"Mode"</th><th>"Changed (UTC)"</th><th></th></tr></thead>
            <tbody>
                // Keyed by path: when the listing comes back after a change, each row keeps its
                // own elements (an open "Delete…" never passes to the next file's row).
                <For
                    each=move || rows.clone()
                    key=|row| row.path.clone()
                    children=move |row| view! { <Row id row here=here.clone() changes/> }.into_any()
                />
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn Row(id: i32, row: FileRow, here: String, changes: Changes) -> impl IntoView {
    let href = if row.dir {
        folder_href(id, &row.path)
    } else {
        open_href(id, &here, &row.path)
    };
    let label = if row.dir {
        format!("{}/", row.name)
    } else {
        row.name.clone()
    };
    let delete_label = if row.dir {
        format!("Delete {} and everything in it", row.name)
    } else {
        format!("Delete {} for good", row.name)
    };
    let download = if row.dir { "Download (zip)" } else { "Download" };
    let site = id.to_string();
    let (site_move, site_mode) = (site.clone(), site.clone());
    let (from, to, mode_path, gone) = (
        row.path.clone(),
        row.path.clone(),
        row.path.clone(),
        row.path.clone(),
    );
    let (move_label, mode_label) = (
        format!("New path of {}", row.name),
        format!("Mode of {}", row.name),
    );
    let octal = row.octal.clone();
    view! {
        <tr data-file=row.path.clone()>
            <td><a href=href>{label}</a>{row.link.then_some(" (link)")}</td>
            <td>{if row.dir { String::new() } else { model::human_bytes(row.size) }}</td>
            <td class="mode">
                <details>
                    <summary title="Change the mode"><code>{row.mode.clone()}</code></summary>
                    <ActionForm action=changes.mode attr:class="inline-form">
                        <input type="hidden" name="site" value=site_mode/>
                        <input type="hidden" name="path" value=mode_path/>
                        <input name="mode" type="text" required value=octal size="4"
                            inputmode="numeric" pattern="[0-7]{3,4}" aria-label=mode_label/>
                        <button type="submit" class="secondary">"Set"</button>
                        <span class="hint">"755: runnable (run.sh), 644: plain file"</span>
                    </ActionForm>
                </details>
            </td>
            <td>{row.modified.clone()}</td>
            <td class="actions">
                <a href=download_href(id, &row.path) download="">{download}</a>
                <details>
                    <summary>"Rename or move"</summary>
                    <ActionForm action=changes.moved attr:class="inline-form">
                        <input type="hidden" name="site" value=site_move/>
                        <input type="hidden" name="from" value=from/>
                        <input name="to" type="text" required value=to aria-label=move_label/>
                        <button type="submit" class="secondary">"Move"</button>
                    </ActionForm>
                </details>
                <details>
                    <summary>"Delete…"</summary>
                    <ActionForm action=changes.deleted attr:class="inline">
                        <input type="hidden" name="site" value=site/>
                        <input type="hidden" name="path" value=gone/>
                        <button type="submit" class="danger">{delete_label}</button>
                    </ActionForm>
                </details>
            </td>
        </tr>
    }
}

#[component]
fn Upload(id: i32, here: Memo<String>, limits: Resource<Result<UploadLimits, AppError>>) -> impl IntoView {
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                limits.await.ok().map(|UploadLimits { file_bytes, total_bytes }| view! {
                    <form method="post" enctype="multipart/form-data" class="upload" data-upload=""
                        action=move || format!("/sites/{id}/files/upload?path={}", url_encode(&here.get()))
                        data-file-limit=file_bytes.to_string() data-total-limit=total_bytes.to_string()>
                        // The flag comes before the files: the server reads the parts in order.
                        <label class="check"><input type="checkbox" name="replace" value="1"/>" Replace files of the same name"</label>
                        <label for="upload-files">"Upload files"</label>
                        <input id="upload-files" type="file" name="file" multiple/>
                        <button type="submit" class="secondary">"Upload"</button>
                        <p class="hint">
                            {format!("Or drop files anywhere on this page. Up to {} a file, {} in all.",
                                model::human_bytes(file_bytes), model::human_bytes(total_bytes))}
                        </p>
                        <div class="upload-progress" data-upload-progress="" hidden>
                            <progress max="100" value="0"></progress>
                            <span data-upload-status="" role="status"></span>
                        </div>
                    </form>
                })
            })}
        </Suspense>
    }
}

#[component]
fn Opened(
    id: i32,
    open: Memo<Option<String>>,
    file: Resource<Result<Option<FileText>, AppError>>,
    save: ServerAction<SaveFile>,
) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Opening…"</p> }>
            {move || Suspend::new(async move {
                match (file.await, open.get_untracked()) {
                    (Ok(Some(file)), _) => view! { <Editor id file save/> }.into_any(),
                    // A new file: the editor starts empty, and its first save creates it.
                    (Err(AppError::NotFound), Some(path)) => view! {
                        <Editor id file=FileText { path, text: Some(String::new()), size: 0, version: String::new() } save/>
                    }.into_any(),
                    (Err(error), _) => view! { <p class="alert error">{error.to_string()}</p> }.into_any(),
                    (Ok(None), _) => ().into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Editor(id: i32, file: FileText, save: ServerAction<SaveFile>) -> impl IntoView {
    // Saves made before this editor opened (another file's) are not its own.
    let opened_at = save.version().get_untracked();
    let own = move || save.version().get() > opened_at;
    let version = RwSignal::new(file.version.clone());
    let dirty = RwSignal::new(false);
    Effect::new(move |_| {
        if own()
            && let Some(Ok(saved)) = save.value().get()
        {
            version.set(saved);
            dirty.set(false);
        }
    });
    let error = Signal::derive(move || if own() { failure(save.value()).get() } else { None });
    let saved = move || own() && !dirty.get() && matches!(save.value().get(), Some(Ok(_)));
    let download = download_href(id, &file.path);
    let (data_path, field_path) = (file.path.clone(), file.path.clone());
    view! {
        <section class="card editor" aria-labelledby="editor-title">
            <h2 id="editor-title">{file.path.clone()}</h2>
            {match file.text {
                Some(text) => view! {
                    <ActionForm action=save attr:class="form editor-form" attr:data-editor="" attr:data-path=data_path>
                        <input type="hidden" name="site" value=id.to_string()/>
                        <input type="hidden" name="path" value=field_path/>
                        <input type="hidden" name="version" prop:value=move || version.get()/>
                        <FormError error/>
                        <FieldError error field="path"/>
                        <Show when=saved><p class="alert ok" role="status">"Saved."</p></Show>
                        <Show when=move || dirty.get()><p class="unsaved" data-unsaved="">"Unsaved changes"</p></Show>
                        <TextBox text dirty/>
                        // The code editor (public/editor.js) builds itself in here; the text box
                        // above stays the form's field, and the editor without JavaScript.
                        <div class="code-editor" data-code-editor=""></div>
                        <button type="submit" class="primary">"Save"</button>
                        <span class="hint">" Ctrl-S or ⌘-S saves."</span>
                    </ActionForm>
                }.into_any(),
                None => view! {
                    <p class="hint">
                        {if file.size > crate::api::EDITABLE_BYTES {
                            format!("This file ({}) is too large to edit here.", model::human_bytes(file.size))
                        } else {
                            format!("This file ({}) is not text, so it is not opened here (saving it as text would damage it).", model::human_bytes(file.size))
                        }}
                        " "
                        <a href=download download="">"Download it"</a>
                    </p>
                }.into_any(),
            }}
        </section>
    }
}

/// The editor's text box. An empty file's box has no text node at all: the server renders
/// none for an empty string, and hydration must find the same.
#[component]
fn TextBox(text: String, dirty: RwSignal<bool>) -> impl IntoView {
    if text.is_empty() {
        view! {
            <textarea name="text" rows="24" spellcheck="false" aria-label="Contents"
                on:input=move |_| dirty.set(true)></textarea>
        }
        .into_any()
    } else {
        view! {
            <textarea name="text" rows="24" spellcheck="false" aria-label="Contents"
                on:input=move |_| dirty.set(true)>{text}</textarea>
        }
        .into_any()
    }
}
