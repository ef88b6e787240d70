//! The room list and the people list: in the side column from 768 px, and
//! below that in panels that slide in over the page (Bootstrap's
//! `offcanvas-md`, opened and closed here, without Bootstrap's script).

use leptos::html::Button;
use leptos::prelude::*;

use crate::components::room_list::unread_label;

/// The panels of a narrow screen; one is open at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    Rooms,
    People,
}

/// Which panel is open, and the buttons that open them (the focus goes
/// back to its button when a panel closes).
#[derive(Clone, Copy)]
pub struct Panels {
    open: RwSignal<Option<Panel>>,
    rooms_button: NodeRef<Button>,
    people_button: NodeRef<Button>,
}

impl Panels {
    pub fn new() -> Self {
        let panels = Self {
            open: RwSignal::new(None),
            rooms_button: NodeRef::new(),
            people_button: NodeRef::new(),
        };
        // Wider than a phone (a tablet turned, say), the lists are in the
        // side column again: no panel is open.
        #[cfg(feature = "hydrate")]
        {
            let handle = window_event_listener(leptos::ev::resize, move |_| {
                let wide = window()
                    .inner_width()
                    .ok()
                    .and_then(|width| width.as_f64())
                    .is_some_and(|width| width >= 768.0);
                if wide && panels.open.get_untracked().is_some() {
                    panels.open.set(None);
                }
            });
            on_cleanup(move || handle.remove());
        }
        panels
    }

    fn is_open(&self, panel: Panel) -> bool {
        self.open.get() == Some(panel)
    }

    fn button(&self, panel: Panel) -> NodeRef<Button> {
        match panel {
            Panel::Rooms => self.rooms_button,
            Panel::People => self.people_button,
        }
    }

    fn close(&self) {
        if let Some(panel) = self.open.get_untracked() {
            self.open.set(None);
            if let Some(button) = self.button(panel).get_untracked() {
                let _ = button.focus();
            }
        }
    }
}

/// The buttons that open the panels, shown under 768 px only. `people`
/// is the number online, shown beside the name (not part of it).
#[component]
pub fn PanelButtons(panels: Panels, people: Signal<usize>, unread: Signal<u64>) -> impl IntoView {
    let button = move |panel: Panel, controls: &'static str, label: &'static str| {
        // Beside "Rooms", how many messages wait in the other rooms (only
        // when some do); beside "Online users", how many there are.
        let count = move || {
            match panel {
            Panel::Rooms => unread_label(unread.get()).map(|waiting| {
                view! {
                    " "
                    <span class="badge rounded-pill text-bg-primary" aria-hidden="true">{waiting.clone()}</span>
                    <span class="visually-hidden">{format!(", {waiting} unread")}</span>
                }
                .into_any()
            }),
            Panel::People => Some(view! {
                " "
                <span class="badge rounded-pill text-bg-secondary" aria-hidden="true">{people}</span>
            }.into_any()),
        }
        };
        view! {
            <button
                type="button"
                class="btn btn-outline-secondary btn-sm panel-button"
                aria-controls=controls
                aria-expanded=move || panels.is_open(panel).to_string()
                node_ref=panels.button(panel)
                on:click=move |_| panels.open.set(Some(panel))
            >
                {label}
                {count}
            </button>
        }
    };
    view! {
        <div class="chat-panels d-flex d-md-none gap-2">
            {button(Panel::Rooms, "rooms-panel", "Rooms")}
            {button(Panel::People, "people-panel", "Online users")}
        </div>
    }
}

/// One panel around `children`. Open, it is a modal dialog: its close
/// button has the focus, Tab and Shift+Tab go round inside it, and Escape,
/// the close button or a tap beside it closes it.
#[component]
pub fn SidePanel(
    panels: Panels,
    panel: Panel,
    id: &'static str,
    title: &'static str,
    /// `start` (from the left) or `end`.
    side: &'static str,
    children: Children,
) -> impl IntoView {
    let shown = move || panels.is_open(panel);
    let close_button = NodeRef::<Button>::new();
    let dialog = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if shown() {
            if let Some(button) = close_button.get() {
                let _ = button.focus();
            }
        }
    });
    view! {
        <div
            id=id
            class=format!("offcanvas-md offcanvas-{side} side-panel")
            class:show=shown
            tabindex="-1"
            role=move || shown().then_some("dialog")
            aria-modal=move || shown().then_some("true")
            aria-label=move || shown().then_some(title)
            node_ref=dialog
            on:keydown=move |ev| {
                if !shown() || ev.is_composing() {
                    return;
                }
                if ev.key() == "Escape" {
                    ev.stop_propagation();
                    panels.close();
                } else if ev.key() == "Tab" {
                    keep_focus_inside(&ev, dialog);
                }
            }
        >
            <div class="offcanvas-header d-md-none">
                <h2 class="offcanvas-title h5 mb-0">{title}</h2>
                <button
                    type="button"
                    class="btn-close"
                    aria-label="Close"
                    node_ref=close_button
                    on:click=move |_| panels.close()
                ></button>
            </div>
            <div class="offcanvas-body">{children()}</div>
        </div>
        <Show when=shown>
            <div class="offcanvas-backdrop fade show d-md-none" on:click=move |_| panels.close()></div>
        </Show>
    }
}

/// Tab on the panel's last control goes to its first, Shift+Tab on its
/// first to its last: the page behind an open panel is out of reach.
#[cfg(feature = "hydrate")]
fn keep_focus_inside(ev: &leptos::ev::KeyboardEvent, panel: NodeRef<leptos::html::Div>) {
    use wasm_bindgen::JsCast;
    let Some(panel) = panel.get_untracked() else {
        return;
    };
    let Ok(found) = panel.query_selector_all(
        "a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex=\"0\"]",
    ) else {
        return;
    };
    let controls: Vec<web_sys::HtmlElement> = (0..found.length())
        .filter_map(|at| found.item(at))
        .filter_map(|node| node.dyn_into::<web_sys::HtmlElement>().ok())
        .collect();
    let (Some(first), Some(last)) = (controls.first(), controls.last()) else {
        return;
    };
    let active = document().active_element();
    let at = |control: &web_sys::HtmlElement| {
        active
            .as_ref()
            .is_some_and(|active| active == control.unchecked_ref::<web_sys::Element>())
    };
    let wrap_to = if ev.shift_key() && at(first) {
        Some(last)
    } else if !ev.shift_key() && at(last) {
        Some(first)
    } else {
        None
    };
    if let Some(control) = wrap_to {
        ev.prevent_default();
        let _ = control.focus();
    }
}

#[cfg(not(feature = "hydrate"))]
fn keep_focus_inside(_: &leptos::ev::KeyboardEvent, _: NodeRef<leptos::html::Div>) {}
