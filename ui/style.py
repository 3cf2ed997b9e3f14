"""The look: a plain theme with large text and high-contrast status, readable on a projector.

Gradio 6 takes the theme and CSS in launch(), not in Blocks(). Presenter mode
(ui/presenter.py) is CSS on the state of its switch (`body:has(#presenter-toggle
input:checked)`): larger type, the advanced settings (`.tl-advanced`) hidden, and
the panel laid out to fit 1280x720 without scrolling.
"""
from __future__ import annotations

import gradio as gr


def theme() -> gr.themes.Base:
    # Local fonts only: the app must look the same on a machine without internet.
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate", text_size=gr.themes.sizes.text_lg,
                             font=["system-ui", "Segoe UI", "Noto Sans KR", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


CSS = """
.tl-header h1 { font-size: 2.2rem; margin: 0.2rem 0 0; }
.tl-header p { font-size: 1.1rem; color: var(--body-text-color-subdued); margin: 0.2rem 0 0.6rem; }
.tl-intro { font-size: 1.1rem; }
.tl-big, .tl-big p { font-size: 1.15rem; }
.tl-error { border-left: 6px solid #b91c1c; background: #fef2f2; color: #7f1d1d; padding: 0.7rem 1rem;
            border-radius: 6px; font-size: 1.1rem; }
.tl-ok { border-left: 6px solid #15803d; background: #f0fdf4; color: #14532d; padding: 0.7rem 1rem;
         border-radius: 6px; font-size: 1.1rem; }
.tl-muted { color: var(--body-text-color-subdued); font-style: italic; }
.tl-check { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.4rem 0.9rem; }
.tl-status { border-left: 10px solid var(--c); padding: 0.6rem 1rem; border-radius: 8px;
             background: color-mix(in srgb, var(--c) 8%, transparent); }
.tl-status .tl-badge { color: var(--c); font-size: 1.9rem; font-weight: 800; margin-right: 1rem; }
.tl-status .tl-run { font-size: 1.2rem; font-weight: 600; margin-right: 1rem; }
.tl-status .tl-step { font-size: 1.5rem; font-weight: 700; }
.tl-status .tl-detail { font-size: 1.1rem; margin-top: 0.3rem; }
.tl-notice { color: #b45309; margin-top: 0.2rem; }
.tl-cards { display: flex; flex-wrap: wrap; gap: 0.6rem; }
.tl-card { flex: 1 1 8rem; border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.4rem 0.7rem; }
.tl-card .tl-k { font-size: 0.9rem; color: var(--body-text-color-subdued); }
.tl-card .tl-v { font-size: 1.5rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.tl-legend { font-weight: 700; font-size: 1.05rem; margin-right: 1.2rem; }
.tl-samples { display: flex; flex-direction: column; gap: 0.6rem; }
.tl-sample { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.5rem 0.8rem; }
.tl-sample .tl-q { font-weight: 700; }
.tl-sample .tl-before { color: var(--body-text-color-subdued); font-size: 0.95rem; margin-top: 0.3rem; }
.tl-examples { display: flex; flex-direction: column; gap: 0.8rem; max-height: 560px; overflow-y: auto; }
.tl-example { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 0.5rem 0.8rem; }
.tl-exn { font-size: 0.85rem; color: var(--body-text-color-subdued); }
.tl-bubble { border-radius: 14px; padding: 0.5rem 0.9rem; margin: 0.35rem 0; max-width: 85%; white-space: pre-wrap; }
.tl-bubble .tl-role { font-size: 0.8rem; font-weight: 700; opacity: 0.7; }
.tl-user { background: #dbeafe; color: #1e3a8a; margin-left: auto; }
.tl-assistant { background: #dcfce7; color: #14532d; box-shadow: inset 4px 0 0 #16a34a; }
.tl-system, .tl-text { background: #f1f5f9; color: #334155; max-width: 100%; }
/* presenter mode: its panel ... */
.tl-presenter { border: 2px solid var(--border-color-primary); border-radius: 12px; padding: 0.5rem 0.8rem;
                gap: 0.5rem !important; }
.pm-progress { border-left: 10px solid var(--c, #475569); border-radius: 8px; padding: 0.35rem 0.9rem;
               background: color-mix(in srgb, var(--c, #475569) 8%, transparent); }
.pm-head { display: flex; align-items: center; gap: 1.4rem; }
.pm-badge { color: var(--c); font-size: 1.6rem; font-weight: 800; white-space: nowrap; }
.pm-track { flex: 1 1 12rem; min-width: 10rem; }
.pm-step { font-size: 1.2rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.pm-bar { height: 14px; border-radius: 7px; background: color-mix(in srgb, var(--c, #475569) 18%, transparent);
          margin-top: 0.2rem; overflow: hidden; }
.pm-bar > div { height: 100%; background: var(--c, #475569); border-radius: 7px; transition: width 0.6s; }
.pm-cell { white-space: nowrap; }
.pm-k { font-size: 0.95rem; color: var(--body-text-color-subdued); }
.pm-v { font-size: 1.5rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.pm-after { font-size: 1.15rem; font-weight: 600; margin-top: 0.2rem; }
.pm-answer { border-radius: 12px; padding: 0.5rem 0.9rem; height: 236px; overflow-y: auto; }
.pm-base { background: #f1f5f9; color: #1e293b; box-shadow: inset 6px 0 0 #64748b; }
.pm-tuned { background: #dcfce7; color: #14532d; box-shadow: inset 6px 0 0 #16a34a; }
.pm-who { font-size: 1.1rem; font-weight: 800; text-transform: uppercase; letter-spacing: 0.04em; opacity: 0.8; }
.pm-asked { font-size: 1rem; font-style: italic; opacity: 0.75; margin: 0.1rem 0 0.3rem; }
.pm-text { font-size: 1.45rem; line-height: 1.35; white-space: pre-wrap; overflow-wrap: anywhere; }
#pm-question textarea, #pm-question input { font-size: 1.45rem !important; }
#presenter-toggle { margin: -0.9rem 0 0 auto; width: fit-content; }
/* ... and the rest of the page while the switch is on: big type, no advanced settings */
body:has(#presenter-toggle input:checked) .tl-advanced { display: none !important; }
body:has(#presenter-toggle input:checked) .gradio-container {
  --text-sm: 16px; --text-md: 19px; --text-lg: 22px; --text-xl: 26px; --text-xxl: 30px;
  --block-label-text-size: 17px; --block-info-text-size: 16px; --button-large-text-size: 22px;
}
body:has(#presenter-toggle input:checked) .tl-header p { display: none; }
body:has(#presenter-toggle input:checked) .tl-header h1 { font-size: 1.8rem; margin: 0; }
"""
