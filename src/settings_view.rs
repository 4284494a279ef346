//! The settings form in the side panel: every setting of the run, bound to the one
//! `Settings` signal that the URL fragment and the worker read.

use crate::app::explain_metric;
use leptos::prelude::*;
use tracesift_core::settings::{Named, Rule, Settings, Similarity};
use tracesift_core::signals::combo::parse_combine;

/// A `<select>` over one named setting, in step with the settings signal.
pub(crate) fn enum_select<T: Named + Send + Sync>(
    settings: RwSignal<Settings>,
    test_id: &'static str,
    get: fn(&Settings) -> T,
    set: fn(&mut Settings, T),
) -> impl IntoView {
    view! {
        <select data-testid=test_id on:change=move |ev| {
            if let Some(value) = T::from_name(&event_target_value(&ev)) {
                settings.update(|s| set(s, value));
            }
        }>
            {T::ALL.iter().map(|&value| view! {
                // The property, not the attribute: once the user has picked an option, the
                // attribute no longer moves the selection (a cancelled `semantic`, a link).
                <option value=value.name() prop:selected=move || settings.with(|s| get(s) == value)>{value.name()}</option>
            }).collect_view()}
        </select>
    }
}

#[component]
pub fn SettingsPanel(settings: RwSignal<Settings>) -> impl IntoView {
    let rule_kind = move || match settings.with(|s| s.rule()) {
        Ok(Rule::Threshold(_)) => "threshold",
        Ok(Rule::Top(_)) => "top",
        _ => "keep",
    };
    let keep_value = move || match settings.with(|s| s.rule()) {
        Ok(Rule::Keep(q)) => q,
        _ => 0.1,
    };
    view! {
        <section class="settings">
            <h2>"Settings"</h2>
            <label title=move || explain_metric(settings.with(|s| s.metric))>"Metric "
                {enum_select(settings, "metric", |s| s.metric, |s, value| s.metric = value)}
            </label>
            <p class="explain">{move || explain_metric(settings.with(|s| s.metric))}</p>
            <label title="How two traces of a question are compared for consistency: answer (the same class), rouge_l (word overlap of the texts), embedding (the file's own vectors), semantic (the texts' meaning, embedded here by all-MiniLM-L6-v2; the first time loads a 90 MB model)">"Similarity "
                {enum_select(settings, "sim", |s| s.sim, |s, value| s.sim = value)}
            </label>
            <Show when=move || settings.with(|s| s.sim == Similarity::Semantic)>
                <label title="Which part of a text longer than the model reads (254 word-pieces) is embedded: the first (as sentence-transformers does) or the last (where a reasoning trace states its conclusion)">"Embedded part "
                    {enum_select(settings, "semantic-part", |s| s.semantic_part, |s, value| s.semantic_part = value)}
                </label>
            </Show>
            <label title="Where the scores are computed: gpu runs token sums, similarities and the semantic model on WebGPU, auto only large ROUGE-L work and the semantic model on a hardware GPU, cpu never. Results agree within 1e-4 (ROUGE-L exactly).">"Backend "
                {enum_select(settings, "backend-choice", |s| s.backend, |s, value| s.backend = value)}
            </label>
            <label title="Score every trace, or only the greedy one of each question (as the paper does)">"Candidates "
                {enum_select(settings, "candidates", |s| s.candidates, |s, value| s.candidates = value)}
            </label>
            <label title="Keep the most confident per predicted class (per_class), or over everything (global)">"Scope "
                {enum_select(settings, "scope", |s| s.scope, |s, value| s.scope = value)}
            </label>
            <div class="rule" title="Keep a fraction of each group, the scores up to a threshold, or the top n">
                <label>"Rule "
                    <select data-testid="rule" on:change=move |ev| {
                        let rule = match event_target_value(&ev).as_str() {
                            "threshold" => Rule::Threshold(0.1),
                            "top" => Rule::Top(100),
                            _ => Rule::Keep(0.1),
                        };
                        settings.update(|s| s.set_rule(rule));
                    }>
                        <option value="keep" prop:selected=move || rule_kind() == "keep">"keep a fraction"</option>
                        <option value="threshold" prop:selected=move || rule_kind() == "threshold">"threshold"</option>
                        <option value="top" prop:selected=move || rule_kind() == "top">"top n"</option>
                    </select>
                </label>
                {move || match rule_kind() {
                    "threshold" => view! {
                        <input type="number" step="0.01" data-testid="threshold"
                            prop:value=move || settings.with(|s| s.threshold.unwrap_or(0.1)).to_string()
                            on:change=move |ev| {
                                if let Ok(x) = event_target_value(&ev).parse::<f64>() && x.is_finite() {
                                    settings.update(|s| s.set_rule(Rule::Threshold(x)));
                                }
                            } />
                    }.into_any(),
                    "top" => view! {
                        <input type="number" min="0" step="1" data-testid="top"
                            prop:value=move || settings.with(|s| s.top.unwrap_or(100)).to_string()
                            on:change=move |ev| {
                                if let Ok(n) = event_target_value(&ev).parse::<u64>() {
                                    settings.update(|s| s.set_rule(Rule::Top(n)));
                                }
                            } />
                    }.into_any(),
                    _ => view! {
                        <input type="range" min="0.01" max="1" step="0.01" data-testid="keep"
                            aria-label="Share of traces kept per group"
                            prop:value=move || keep_value().to_string()
                            on:input=move |ev| {
                                if let Ok(q) = event_target_value(&ev).parse::<f64>() && q > 0.0 && q <= 1.0 {
                                    settings.update(|s| s.set_rule(Rule::Keep(q)));
                                }
                            } />
                        <span>{move || format!("{:.0} %", keep_value() * 100.0)}</span>
                    }.into_any(),
                }}
            </div>
            <label title="Cut every class to the smallest class's count">
                <input type="checkbox" data-testid="balanced" prop:checked=move || settings.with(|s| s.balanced)
                    on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        settings.update(|s| s.balanced = input.checked());
                    } />
                " balanced"
            </label>
            <label title="Map raw answers onto classes: up=up,upregulated,a;down=down,b (end with ! to make it strict)">"Class map "
                <input type="text" data-testid="classes" placeholder="up=up,upregulated,a;down=down,b;none=none,c"
                    prop:value=move || settings.with(|s| s.classes.clone())
                    on:change=move |ev| settings.update(|s| s.classes = event_target_value(&ev)) />
            </label>
            <label title="Regular expression for the final answer (first group, last match); empty for the default">"Answer pattern "
                <input type="text" data-testid="pattern" placeholder="default: Final answer: … or <answer>…</answer>"
                    prop:value=move || settings.with(|s| s.pattern.clone().unwrap_or_default())
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        settings.update(|s| s.pattern = (!value.is_empty()).then_some(value));
                    } />
            </label>
            <label title="DeepConf's sliding window in tokens, for conf_tail, conf_bottom10 and conf_lowest">"Window "
                <input type="number" min="1" step="1" data-testid="window"
                    prop:value=move || settings.with(|s| s.window).to_string()
                    on:change=move |ev| {
                        if let Ok(window) = event_target_value(&ev).parse::<u32>() && window >= 1 {
                            settings.update(|s| s.window = window);
                        }
                    } />
            </label>
            <label title="Metrics whose percentile ranks combo averages, comma-separated">"Combine "
                <input type="text" data-testid="combine"
                    prop:value=move || settings.with(|s| s.combine.clone())
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        if parse_combine(&value).is_ok() {
                            settings.update(|s| s.combine = value);
                        }
                    } />
            </label>
            <label title="The format of the downloaded set">"Export "
                {enum_select(settings, "export", |s| s.export, |s, value| s.export = value)}
            </label>
            <label title="An openai, trl, sharegpt or alpaca download in which a kept trace has no prompt would train on nothing, so it is refused; tick to download it anyway">
                <input type="checkbox" data-testid="allow-empty-prompt" prop:checked=move || settings.with(|s| s.allow_empty_prompt)
                    on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        settings.update(|s| s.allow_empty_prompt = input.checked());
                    } />
                " allow empty prompts"
            </label>
        </section>
    }
}
