//! An element whose content is a list of HTML blocks, patched block by block.
//!
//! The preview of a 1 MB document is about 1.5 MB of HTML; parsing and laying all of it out
//! again for each keystroke costs the browser a tenth of a second or more. Given the new list
//! of blocks, [`ShownBlocks::show`] keeps the blocks at both ends that did not change and
//! replaces only those between, so the browser parses and lays out what changed, whatever
//! the document's size. The caret layer is shown the same way.

use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlTemplateElement, Node};

/// One block as the element shows it: its HTML and how many nodes it made there.
struct Shown {
    html: String,
    nodes: u32,
}

pub struct ShownBlocks {
    element: Element,
    /// What the element holds, block by block; `None` until this page first showed it (it
    /// holds what the server rendered, whose blocks are not known here).
    shown: Option<Vec<Shown>>,
    /// Parses a block's HTML into nodes without putting them in the page.
    template: HtmlTemplateElement,
}

impl ShownBlocks {
    /// `None` only where the page cannot make a `<template>`, which no browser lacks.
    pub fn new(element: Element) -> Option<Self> {
        let template = element
            .owner_document()?
            .create_element("template")
            .ok()?
            .dyn_into::<HtmlTemplateElement>()
            .ok()?;
        Some(ShownBlocks {
            element,
            shown: None,
            template,
        })
    }

    pub fn element(&self) -> &Element {
        &self.element
    }

    /// Takes what the element holds (the server's rendering) as `blocks`, without touching it,
    /// when the nodes they make add up to the element's: the first change then replaces one
    /// block rather than all of them. The caller vouches that the element shows `blocks` (they
    /// are the rendering of the text the server rendered); a count that differs all the same
    /// leaves the element to be built whole.
    pub fn adopt(&mut self, blocks: Vec<String>) {
        if self.shown.is_some() {
            return;
        }
        let mut adopted = Vec::with_capacity(blocks.len());
        let mut total = 0;
        for html in blocks {
            self.template.set_inner_html(&html);
            let nodes = self.template.content().child_nodes().length();
            total += nodes;
            adopted.push(Shown { html, nodes });
        }
        self.template.set_inner_html("");
        if total == self.element.child_nodes().length() {
            self.shown = Some(adopted);
            self.mark_patched();
        }
    }

    /// Says on the element (`data-blocks`) that this page now knows its blocks and replaces
    /// only those that change, for whoever inspects the page (the tests among them).
    fn mark_patched(&self) {
        let _ = self.element.set_attribute("data-blocks", "patched");
    }

    /// Empties the element; the next [`ShownBlocks::show`] builds it whole.
    pub fn clear(&mut self) {
        self.element.set_inner_html("");
        let _ = self.element.remove_attribute("data-blocks");
        self.shown = None;
    }

    /// Makes the element show `blocks`, replacing only the blocks that changed since the last
    /// call: those between the longest unchanged run at the start and the longest unchanged
    /// run at the end, and, where the count of blocks stayed the same, only the ones that
    /// differ.
    pub fn show(&mut self, blocks: Vec<String>) {
        let Some(shown) = self.shown.as_mut() else {
            self.element.set_inner_html("");
            let mut fresh = Vec::with_capacity(blocks.len());
            for html in blocks {
                let nodes = insert(&self.element, &self.template, &html, None);
                fresh.push(Shown { html, nodes });
            }
            self.shown = Some(fresh);
            self.mark_patched();
            return;
        };
        let prefix = shown
            .iter()
            .zip(&blocks)
            .take_while(|(old, new)| old.html == **new)
            .count();
        let room = shown.len().min(blocks.len()) - prefix;
        let suffix = shown
            .iter()
            .rev()
            .zip(blocks.iter().rev())
            .take(room)
            .take_while(|(old, new)| old.html == **new)
            .count();
        let mut at: u32 = shown[..prefix].iter().map(|s| s.nodes).sum();
        let old_middle = prefix..shown.len() - suffix;
        let new_middle = prefix..blocks.len() - suffix;
        let mut blocks = blocks;
        let new_blocks: Vec<String> = blocks.drain(new_middle.clone()).collect();
        if old_middle.len() == new_middle.len() {
            // Same count: replace one by one, leaving the equal ones in place.
            for (old, html) in shown[old_middle].iter_mut().zip(new_blocks) {
                if old.html != html {
                    let before = remove(&self.element, at, old.nodes);
                    old.nodes = insert(&self.element, &self.template, &html, before.as_ref());
                    old.html = html;
                }
                at += old.nodes;
            }
            return;
        }
        let removed: u32 = shown[old_middle.clone()].iter().map(|s| s.nodes).sum();
        let before = remove(&self.element, at, removed);
        let fresh: Vec<Shown> = new_blocks
            .into_iter()
            .map(|html| {
                let nodes = insert(&self.element, &self.template, &html, before.as_ref());
                Shown { html, nodes }
            })
            .collect();
        shown.splice(old_middle, fresh);
    }
}

/// Removes `count` child nodes of `element` from the `at`-th; returns the node after them.
fn remove(element: &Element, at: u32, count: u32) -> Option<Node> {
    let children = element.child_nodes();
    for _ in 0..count {
        if let Some(node) = children.item(at) {
            let _ = element.remove_child(&node);
        }
    }
    children.item(at)
}

/// Parses `html` and inserts its nodes into `element` before `before` (at the end without
/// it); returns how many nodes it made.
fn insert(
    element: &Element,
    template: &HtmlTemplateElement,
    html: &str,
    before: Option<&Node>,
) -> u32 {
    template.set_inner_html(html);
    let fragment = template.content();
    let nodes = fragment.child_nodes().length();
    let _ = element.insert_before(&fragment, before);
    nodes
}
