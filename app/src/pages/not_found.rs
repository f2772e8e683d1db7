use leptos::prelude::*;
use leptos_meta::Title;

use crate::{AppError, components::ErrorPage};

/// Any path the manager does not have.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    view! {
        <Title text="Not found"/>
        <main id="main" class="narrow">
            <ErrorPage error=AppError::NotFound/>
        </main>
    }
}
