//! The pieces every list card shares: the line shown before the first answer, and the table
//! in its horizontally scrolling box.

use leptos::prelude::*;

/// What a card shows until its first answer arrives.
#[component]
pub(super) fn Loading() -> impl IntoView {
    view! { <p class="muted">"Loading…"</p> }
}

/// A table with the header cells `head` and the body rows `children`, in a box that scrolls
/// sideways on a narrow screen.
#[component]
pub(super) fn ScrollTable<H>(id: &'static str, head: H, children: Children) -> impl IntoView
where
    H: IntoView + 'static,
{
    view! {
        <div class="scroll">
            <table id=id>
                <thead><tr>{head}</tr></thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}
