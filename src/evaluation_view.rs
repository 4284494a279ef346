//! Evaluation against gold labels (AUROC, PRR, kept-vs-dropped accuracy) and which signal
//! fits this data (metrics ranked with bootstrap intervals, or their agreement).

use crate::app::explain_metric;
use leptos::prelude::*;
use tracesift_core::compare::{Agreement, Interval, Ranking};
use tracesift_core::evaluate::EvalReport;
use tracesift_core::settings::Settings;

/// AUROC and PRR of every metric, and the kept-vs-dropped accuracy (with gold labels).
#[component]
pub fn EvalTable(evaluation: RwSignal<Option<EvalReport>>) -> impl IntoView {
    move || {
        evaluation.with(|report| {
            let report = report.as_ref()?;
            let number = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
            let rows = report
                .metrics
                .0
                .iter()
                .map(|(metric, evaluation)| {
                    view! {
                        <tr title=explain_metric(*metric)>
                            <td>{metric.name()}</td>
                            <td>{number(evaluation.auroc)}</td>
                            <td>{number(evaluation.prr)}</td>
                            <td>{number(evaluation.kept_accuracy)}</td>
                            <td>{number(evaluation.dropped_accuracy)}</td>
                        </tr>
                    }
                })
                .collect_view();
            Some(view! {
                <section class="evaluation">
                    <h2 title="Only traces with a gold `label` count">
                        {format!("Against gold labels: {} traces, accuracy {}", report.n, number(report.accuracy))}
                    </h2>
                    <table data-testid="eval-table">
                        <thead><tr>
                            <th title="How well the score ranks errors above right answers (0.5 = chance)">"metric"</th>
                            <th title="Area under the ROC curve of the score as an error detector">"AUROC"</th>
                            <th title="Prediction-rejection ratio at 50 % rejection (1 = oracle, 0 = random)">"PRR"</th>
                            <th title="Accuracy of the traces the filter keeps with this metric">"kept acc."</th>
                            <th title="Accuracy of the traces it drops">"dropped acc."</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            })
        })
    }
}

/// What the worker found about which signal fits the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// None without gold labels.
    pub ranking: Option<Ranking>,
    pub agreement: Agreement,
}

pub(crate) fn estimate(value: Option<f64>, interval: Option<Interval>) -> String {
    match (value, interval) {
        (Some(value), Some(ci)) => format!("{value:.3} [{:.3}, {:.3}]", ci.low, ci.high),
        (Some(value), None) => format!("{value:.3}"),
        (None, _) => "—".to_owned(),
    }
}

/// Which signal fits this data: with labels, every metric ranked by PRR and AUROC with
/// bootstrap intervals and a button that filters by the best; without, how strongly the
/// metrics agree (Spearman's ρ), to see which are redundant.
#[component]
pub fn SignalFit(
    comparison: RwSignal<Option<Comparison>>,
    settings: RwSignal<Settings>,
) -> impl IntoView {
    move || {
        comparison.with(|found| {
            let found = found.as_ref()?;
            let ranking = found.ranking.as_ref().map(|ranking| {
                let best = ranking.best;
                let rows = ranking
                    .metrics
                    .iter()
                    .map(|entry| {
                        let gap = match entry.prr_gap_to_best {
                            Some(ci) if ci.low > 0.0 => format!("worse [{:.3}, {:.3}]", ci.low, ci.high),
                            Some(ci) => format!("as good [{:.3}, {:.3}]", ci.low, ci.high),
                            None if Some(entry.metric) == best => "best".to_owned(),
                            None => "—".to_owned(),
                        };
                        view! {
                            <tr title=explain_metric(entry.metric)>
                                <td>{entry.metric.name()}</td>
                                <td>{entry.direction.arrow()}</td>
                                <td>{entry.n}</td>
                                <td>{estimate(entry.prr, entry.prr_ci)}</td>
                                <td>{estimate(entry.auroc, entry.auroc_ci)}</td>
                                <td>{gap}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <h3>{format!("Ranked on {} labelled traces ({} bootstrap resamples, seed {})", ranking.n, ranking.resamples, ranking.seed)}</h3>
                    {best.map(|best| view! {
                        <button data-testid="use-best" title="Filter by the metric with the highest PRR on the labelled traces"
                            disabled=move || settings.with(|s| s.metric == best)
                            on:click=move |_| settings.update(|s| s.metric = best)>
                            {format!("Use the best: {}", best.name())}
                        </button>
                    })}
                    <table data-testid="ranking-table">
                        <thead><tr>
                            <th>"metric"</th>
                            <th title="↑u: an uncertainty, lower is kept first; ↑c: a confidence, higher is kept first">"dir"</th>
                            <th title="Labelled traces where the metric is defined">"n"</th>
                            <th title="PRR at 50 % rejection with its 95 % bootstrap interval">"PRR [95 %]"</th>
                            <th title="AUROC as an error detector with its 95 % bootstrap interval">"AUROC [95 %]"</th>
                            <th title="PRR gap to the best over the same resamples: worse when the whole interval is above 0">"vs the best"</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                }
            });
            let agreement = &found.agreement;
            let header = agreement
                .metrics
                .iter()
                .map(|metric| view! { <th title=explain_metric(*metric)>{metric.name()}</th> })
                .collect_view();
            let body = agreement
                .metrics
                .iter()
                .zip(&agreement.spearman)
                .map(|(metric, row)| {
                    let cells = row
                        .iter()
                        .map(|rho| {
                            let text = rho.map_or_else(|| "—".to_owned(), |rho| format!("{rho:.2}"));
                            // Stronger agreement, darker cell: redundant signals stand out.
                            let shade = rho.map_or(0.0, f64::abs);
                            let style = format!("background: rgba(70, 110, 200, {:.2})", shade * 0.6);
                            view! { <td style=style>{text}</td> }
                        })
                        .collect_view();
                    view! { <tr><th>{metric.name()}</th>{cells}</tr> }
                })
                .collect_view();
            let open = found.ranking.is_none();
            Some(view! {
                <section class="evaluation" data-testid="signal-fit">
                    <h2>"Which signal fits this data?"</h2>
                    {ranking}
                    <details open=open>
                        <summary>"How strongly the metrics agree (Spearman's ρ over the traces; near 1: redundant)"</summary>
                        <div class="table-scroll" tabindex="0" role="region" aria-label="Agreement between the metrics">
                            <table data-testid="agreement-table">
                                <thead><tr><th></th>{header}</tr></thead>
                                <tbody>{body}</tbody>
                            </table>
                        </div>
                    </details>
                </section>
            })
        })
    }
}
