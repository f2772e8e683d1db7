//! The pages the edge answers with itself: no such site, not served, disabled, starting or
//! failing, too large. Plain HTML, no external resources, nothing about the server.

fn page(title: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;\
         padding:0 1.5rem;line-height:1.5}}h1{{font-size:1.5rem}}p{{color:GrayText}}</style></head>\
         <body><h1>{title}</h1><p>{text}</p><p><small>Director</small></p></body></html>"
    )
}

pub(crate) fn no_such_site() -> String {
    page(
        "No site here",
        "There is no site at this address. Check the address for typos.",
    )
}

pub(crate) fn not_served() -> String {
    page(
        "This site is not being served",
        "Its owners have taken it offline for now. Try again later.",
    )
}

pub(crate) fn disabled() -> String {
    page(
        "This site is disabled",
        "An administrator has disabled this site.",
    )
}

pub(crate) fn starting_or_failing() -> String {
    page(
        "This site is starting or failing",
        "The site did not answer. If it was just started or changed, it will be up in a moment; \
         if this persists, its owners should check its logs.",
    )
}

pub(crate) fn too_large() -> String {
    page(
        "Request too large",
        "The request's body is larger than this site accepts.",
    )
}

pub(crate) fn not_found() -> String {
    page("Not found", "This site has no page at this address.")
}

pub(crate) fn bad_path() -> String {
    page(
        "Bad address",
        "This address cannot name a page: it holds a NUL character, or a part longer than 255 bytes.",
    )
}
