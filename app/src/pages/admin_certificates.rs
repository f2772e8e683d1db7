use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::{EXPIRY_WARNING_DAYS, certificate_problems},
    components::{CertificateStatus, ErrorPage, SignedIn},
};

/// Admin: every certificate that failed or expires within two weeks, soonest first.
#[component]
pub fn AdminCertificatesPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let problems = Resource::new(|| (), |()| certificate_problems());
    view! {
        <Title text="Certificates"/>
        <SignedIn admin=true page=move |_| view! {
            <div class="page-head"><h1>"Certificates"</h1></div>
            <p class="hint">{format!("Certificates that failed, or expire within {EXPIRY_WARNING_DAYS} days. The edge renews them about a month before they expire: one listed here is not renewing.")}</p>
            <Suspense fallback=|| view! { <p class="loading">"Loading certificates…"</p> }>
                {move || Suspend::new(async move {
                    match problems.await {
                        Ok(page) if !page.https => view! {
                            <p class="empty-state">"Director's edge gets no certificates: the sites are served over plain HTTP (serve them over HTTPS with --https-listen and a real --sites-domain), or Traefik gets them with its own resolver."</p>
                        }.into_any(),
                        Ok(page) if page.rows.is_empty() => view! {
                            <p class="empty-state">{format!("All is well: every certificate is valid for more than {EXPIRY_WARNING_DAYS} days.")}</p>
                        }.into_any(),
                        Ok(page) => view! {
                            <table class="list certificates">
                                <thead><tr><th>"Address"</th><th>"Site"</th><th>"Certificate"</th></tr></thead>
                                <tbody>
                                    {page.rows.into_iter().map(|row| {
                                        let (host, shown) = (row.certificate.host.clone(), row.certificate.host.clone());
                                        view! {
                                            <tr data-host=host>
                                                <td><code>{shown}</code></td>
                                                <td><a href=format!("/sites/{}", row.site_id)>{row.site_name}</a></td>
                                                <td><CertificateStatus certificate=row.certificate/></td>
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
        }/>
    }
}
