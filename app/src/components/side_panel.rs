//! The room list and the people list: in the side column from 768 px, and
//! below that in panels that slide in over the page (Bootstrap's
//! `offcanvas-md`, opened and closed here, without Bootstrap's script).

use leptos::html::Button;
use leptos::prelude::*;

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
        Self {
            open: RwSignal::new(None),
            rooms_button: NodeRef::new(),
            people_button: NodeRef::new(),
        }
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
pub fn PanelButtons(panels: Panels, people: Signal<usize>) -> impl IntoView {
    let button = move |panel: Panel, controls: &'static str, label: &'static str| {
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
                {(panel == Panel::People).then(|| view! {
                    " "
                    <span class="badge rounded-pill text-bg-secondary" aria-hidden="true">{people}</span>
                })}
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

/// One panel around `children`. Open, it is a dialog: its close button has
/// the focus, and Escape, the close button or a tap beside it closes it.
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
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    ev.stop_propagation();
                    panels.close();
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
