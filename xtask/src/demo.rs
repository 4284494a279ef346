//! The demo data the app ships (`public/demo.jsonl.gz`): PerturbQA-style knock-down
//! questions answered by a simulated reasoning model, written so that every uncertainty
//! signal has something to show in a workshop.
//!
//! Unlike `cargo xtask gen` (fixed-length traces for benchmarks), a demo trace reads like a
//! model reasoning about the perturbation: it recalls what the knocked-down gene does, what
//! losing it sets off, and whether that reaches the target gene, then concludes. A small
//! table of gene groups, stresses and transcription-factor targets decides each question's
//! gold class, so a correct trace follows the real mechanism and a wrong one takes a
//! recognisable wrong turn (the knocked-down gene mixed up with the target, knock-down read
//! as overexpression, "any stress induces it", a real effect waved away). Hard questions and
//! wrong answers run longer, some traces loop until the token limit or give up without an
//! answer, and a trace's wording style moves its token entropy independently of whether it
//! is right — so msp (which grows with length), ppl, mte and consistency rank traces
//! differently. The same seed always gives the same bytes.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use flate2::{Compression, GzBuilder};

use crate::generate::{CELL_LINES, SplitMix64};

/// Written as the gzip comment of the demo file, so `ensure_demo` regenerates a demo made
/// by an older generator. Change it whenever the generator's output changes (the pinned
/// hash in the tests says when).
pub const DEMO_STAMP: &str = "tracesift demo v2";

/// What the app ships: 200 questions × (1 greedy + 8 samples), 30 % with gold labels.
pub const DEMO_OPTIONS: DemoOptions = DemoOptions {
    questions: 200,
    samples_per_question: 8,
    labelled_fraction: 0.3,
    seed: 12,
};

/// The generation budget of the simulated model: a trace that has not concluded by then is
/// cut off mid-sentence, without an answer.
const MAX_TOKENS: usize = 1_500;
/// The shortest a trace is asked to be; the fixed parts alone come close to it.
const MIN_TARGET_TOKENS: f64 = 80.0;
/// Entries in each token's top list (the chosen token and the likeliest alternatives).
const TOP_K: usize = 3;
/// Chosen tokens' log-probs are written with this many significant digits, the
/// alternatives with fewer: plenty for every score, and it keeps the download small.
const SIGNIFICANT_DIGITS: i32 = 3;
const ALTERNATIVE_DIGITS: i32 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    pub questions: u64,
    pub samples_per_question: u32,
    pub labelled_fraction: f64,
    pub seed: u64,
}

/// What one demo file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoStats {
    pub questions: u64,
    pub traces: u64,
    pub labelled_questions: u64,
    /// Traces that end without a final answer (cut at the limit, or undecided).
    pub unanswered: u64,
    /// Answered traces whose answer is the gold class.
    pub correct: u64,
    pub min_tokens: usize,
    pub max_tokens: usize,
    pub total_tokens: u64,
    /// Uncompressed JSONL bytes.
    pub bytes: u64,
}

/// Writes the demo, gzipped at the best level (it is downloaded with the app), stamped.
pub fn write_demo(options: &DemoOptions, path: &Path) -> anyhow::Result<DemoStats> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = GzBuilder::new()
        .comment(DEMO_STAMP)
        .write(std::io::BufWriter::new(file), Compression::best());
    let stats = generate(options, &mut encoder)?;
    let mut inner = encoder
        .finish()
        .with_context(|| format!("cannot finish {}", path.display()))?;
    inner
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(stats)
}

/// Whether `path` holds a demo made by this generator (its gzip comment is the stamp).
pub fn is_current(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut decoder = flate2::read::GzDecoder::new(file);
    let mut first = [0u8; 1];
    if decoder.read(&mut first).is_err() {
        return false;
    }
    decoder
        .header()
        .and_then(|header| header.comment())
        .is_some_and(|comment| comment == DEMO_STAMP.as_bytes())
}

/// Writes the demo's JSONL to `out`.
pub fn generate(options: &DemoOptions, out: &mut dyn Write) -> anyhow::Result<DemoStats> {
    let mut demo = DemoWriter::new(options);
    let mut stats = DemoStats {
        min_tokens: usize::MAX,
        ..DemoStats::default()
    };
    for question_number in 1..=options.questions {
        let question = demo.draw_question()?;
        stats.questions += 1;
        stats.labelled_questions += u64::from(question.labelled);
        for trace_index in 0..=u64::from(options.samples_per_question) {
            let trace = demo.write_trace(&question, question_number, trace_index);
            out.write_all(&demo.line)
                .context("cannot write the demo traces")?;
            stats.traces += 1;
            stats.bytes += demo.line.len() as u64;
            stats.total_tokens += trace.n_tokens as u64;
            stats.min_tokens = stats.min_tokens.min(trace.n_tokens);
            stats.max_tokens = stats.max_tokens.max(trace.n_tokens);
            match trace.answer {
                None => stats.unanswered += 1,
                Some(answer) if answer == question.gold => stats.correct += 1,
                Some(_) => {}
            }
        }
    }
    if stats.traces == 0 {
        stats.min_tokens = 0;
    }
    Ok(stats)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Up,
    Down,
    Unchanged,
}

impl Class {
    const ALL: [Class; 3] = [Class::Up, Class::Down, Class::Unchanged];

    fn answer_word(self) -> &'static str {
        match self {
            Class::Up => "up",
            Class::Down => "down",
            Class::Unchanged => "none",
        }
    }

    fn direction_word(self) -> &'static str {
        match self {
            Class::Up => "upregulated",
            Class::Down => "downregulated",
            Class::Unchanged => "unchanged",
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Up => 0,
            Class::Down => 1,
            Class::Unchanged => 2,
        }
    }

    fn others(self) -> [Class; 2] {
        match self {
            Class::Up => [Class::Down, Class::Unchanged],
            Class::Down => [Class::Up, Class::Unchanged],
            Class::Unchanged => [Class::Up, Class::Down],
        }
    }
}

/// What losing a gene of a group sets off in the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stress {
    Er,
    Proteotoxic,
    Mitochondrial,
    DnaDamage,
    SterolLoss,
    GrowthArrest,
}

struct StressFacts {
    stress: Stress,
    name: &'static str,
    effector: &'static str,
    response: &'static str,
    /// Genes that move when this stress sets in: up, except for a growth arrest (down).
    responders: &'static [&'static str],
}

const STRESSES: &[StressFacts] = &[
    StressFacts {
        stress: Stress::Er,
        name: "ER stress",
        effector: "ATF6 and XBP1",
        response: "the unfolded protein response",
        responders: &[
            "HSPA5", "HSP90B1", "PDIA4", "PDIA6", "CALR", "DNAJB9", "SEL1L", "SYVN1", "DDIT3",
            "HERPUD1", "ATF4", "XBP1", "ATF3",
        ],
    },
    StressFacts {
        stress: Stress::Proteotoxic,
        name: "proteotoxic stress",
        effector: "HSF1 and NFE2L1",
        response: "the heat-shock and proteasome bounce-back response",
        responders: &[
            "HSPA1A", "HSPA8", "DNAJA1", "HSP90AA1", "SQSTM1", "ATF3", "PSMA1", "PSMB5", "PSMD1",
            "PSMC3",
        ],
    },
    StressFacts {
        stress: Stress::Mitochondrial,
        name: "mitochondrial stress",
        effector: "ATF4",
        response: "the integrated stress response",
        responders: &["ATF4", "DDIT3", "ATF3", "MTHFD1"],
    },
    StressFacts {
        stress: Stress::DnaDamage,
        name: "DNA damage",
        effector: "TP53",
        response: "the p53 response",
        responders: &["CDKN1A", "BBC3", "PMAIP1", "BAX"],
    },
    StressFacts {
        stress: Stress::SterolLoss,
        name: "sterol depletion",
        effector: "SREBF2",
        response: "the SREBP sterol response",
        responders: &["LDLR", "HMGCR", "INSIG1"],
    },
    StressFacts {
        stress: Stress::GrowthArrest,
        name: "a growth slowdown",
        effector: "MYC and E2F1",
        response: "the proliferation program",
        responders: &[
            "CDK1", "CCNB1", "PLK1", "AURKA", "AURKB", "BUB1", "MAD2L1", "CDC20", "E2F1", "MYC",
            "CCND1", "RPL3", "RPL5", "RPL11", "RPS6", "RPS19",
        ],
    },
];

struct GeneGroup {
    genes: &'static [&'static str],
    /// "{P} is {role}."
    role: &'static str,
    /// "… involved in {process}."
    process: &'static str,
    /// "After the knockdown, {loss}."
    loss: &'static str,
    stress: Option<Stress>,
}

#[rustfmt::skip]
const GROUPS: &[GeneGroup] = &[
    GeneGroup {
        genes: &["SEC61A1", "SEC61B", "SRPRB", "SSR1", "SSR2", "EMC1", "EMC3", "EMC4", "EMC6",
            "HSP90B1", "PDIA6", "PDIA4", "PDIA3", "CALR", "CANX", "SLC35B1", "HSPA5", "SEL1L",
            "SYVN1", "DNAJB9", "HERPUD1", "UFM1", "UFL1", "DDRGK1"],
        role: "part of the ER translocation and folding machinery",
        process: "protein import and folding in the ER",
        loss: "unfolded proteins pile up in the ER",
        stress: Some(Stress::Er),
    },
    GeneGroup {
        genes: &["ATF4", "ATF6", "XBP1", "ERN1", "EIF2AK3", "DDIT3"],
        role: "a sensor or effector of the unfolded protein response",
        process: "the response to ER stress",
        loss: "the cell loses part of its response to ER stress",
        stress: None,
    },
    GeneGroup {
        genes: &["MYC", "MAX", "TP53", "JUN", "FOS", "ATF3", "CEBPB", "NFE2L2", "KLF4", "GATA1",
            "TAL1", "SPI1", "RUNX1", "STAT3", "STAT5A", "NFKB1", "RELA", "HIF1A", "SREBF1",
            "SREBF2", "E2F1", "YY1", "CTCF", "ZNF143", "TFEB"],
        role: "a transcription factor",
        process: "the control of its target genes",
        loss: "its target genes lose their regulator",
        stress: None,
    },
    GeneGroup {
        genes: &["RPL3", "RPL5", "RPL11", "RPS6", "RPS19", "EIF2S1", "EIF4E", "EIF4G1", "EEF2",
            "EIF3A"],
        role: "a core part of the translation machinery",
        process: "protein synthesis",
        loss: "protein synthesis slows and the cells grow more slowly",
        stress: Some(Stress::GrowthArrest),
    },
    GeneGroup {
        genes: &["PSMA1", "PSMB5", "PSMD1", "PSMC3", "UBA1", "VCP", "NPLOC4", "UFD1"],
        role: "part of the ubiquitin-proteasome system",
        process: "the turnover of misfolded and short-lived proteins",
        loss: "misfolded proteins accumulate in the cytosol",
        stress: Some(Stress::Proteotoxic),
    },
    GeneGroup {
        genes: &["HSPA8", "HSPA1A", "HSP90AA1", "DNAJA1", "CCT2", "CCT4"],
        role: "a cytosolic chaperone",
        process: "the folding of newly made proteins",
        loss: "client proteins misfold",
        stress: Some(Stress::Proteotoxic),
    },
    GeneGroup {
        genes: &["SDHA", "NDUFS1", "COX4I1", "ATP5F1A", "TFAM", "POLG", "MRPL12", "TOMM40",
            "TIMM23", "PINK1"],
        role: "needed for mitochondrial respiration",
        process: "oxidative phosphorylation",
        loss: "respiration drops and the mitochondria signal distress",
        stress: Some(Stress::Mitochondrial),
    },
    GeneGroup {
        genes: &["CDK1", "CDK2", "CDK4", "CCNB1", "CCND1", "PLK1", "AURKA", "AURKB", "BUB1",
            "MAD2L1", "CDC20"],
        role: "a cell-cycle regulator",
        process: "cell division",
        loss: "the cells arrest and stop dividing",
        stress: Some(Stress::GrowthArrest),
    },
    GeneGroup {
        genes: &["CDKN1A", "CDKN2A"],
        role: "a cyclin-dependent kinase inhibitor",
        process: "cell-cycle arrest",
        loss: "the cell cycle loses one of its brakes",
        stress: None,
    },
    GeneGroup {
        genes: &["BRCA1", "BRCA2", "ATM", "ATR", "CHEK1", "CHEK2", "RAD51", "PARP1", "XRCC5",
            "MSH2"],
        role: "part of the DNA damage response",
        process: "DNA repair",
        loss: "unrepaired DNA damage builds up",
        stress: Some(Stress::DnaDamage),
    },
    GeneGroup {
        genes: &["SF3B1", "U2AF1", "SRSF1", "SRSF2", "HNRNPA1", "SNRPD1", "PRPF8"],
        role: "a core splicing factor",
        process: "pre-mRNA splicing",
        loss: "intron retention rises and the cells grow more slowly",
        stress: Some(Stress::GrowthArrest),
    },
    GeneGroup {
        genes: &["KRAS", "NRAS", "BRAF", "MAP2K1", "MAPK1", "MAPK3", "PIK3CA", "AKT1", "MTOR",
            "RPTOR"],
        role: "a growth-signalling kinase or adaptor",
        process: "growth signalling through MAPK and mTOR",
        loss: "growth signalling weakens and proliferation slows",
        stress: Some(Stress::GrowthArrest),
    },
    GeneGroup {
        genes: &["RICTOR", "TSC2", "PTEN", "GSK3B", "CTNNB1", "NOTCH1", "SMAD4", "TGFBR2",
            "JAK2", "SOCS3"],
        role: "a signalling regulator",
        process: "the tuning of growth and differentiation signals",
        loss: "one signalling branch is rewired",
        stress: None,
    },
    GeneGroup {
        genes: &["HMGCR", "LDLR"],
        role: "a step of cholesterol supply",
        process: "cholesterol supply",
        loss: "the ER membrane runs short of sterols",
        stress: Some(Stress::SterolLoss),
    },
    GeneGroup {
        genes: &["FASN", "ACACA", "SCD", "INSIG1", "HK2", "PKM", "LDHA", "G6PD", "SLC2A1"],
        role: "a metabolic enzyme or regulator",
        process: "lipid and glucose metabolism",
        loss: "its metabolic branch slows",
        stress: None,
    },
    GeneGroup {
        genes: &["COPB1", "COPA", "ARF1", "GBF1", "SEC23B", "SEC24C", "TRAPPC3", "RAB1A",
            "GOLGA2"],
        role: "part of the ER-to-Golgi trafficking machinery",
        process: "ER-to-Golgi transport",
        loss: "secretory cargo backs up in the ER",
        stress: Some(Stress::Er),
    },
    GeneGroup {
        genes: &["ATG5", "ATG7", "BECN1", "SQSTM1", "MAP1LC3B", "LAMP1"],
        role: "part of the autophagy machinery",
        process: "autophagy",
        loss: "autophagic recycling slows",
        stress: None,
    },
    GeneGroup {
        genes: &["BCL2", "BCL2L1", "MCL1", "BAX", "BAK1", "CASP3", "CASP9", "XIAP", "BBC3",
            "PMAIP1"],
        role: "a regulator of apoptosis",
        process: "the choice between survival and apoptosis",
        loss: "the balance between survival and death shifts",
        stress: None,
    },
    GeneGroup {
        genes: &["EZH2", "SUZ12", "KMT2A", "KDM1A", "HDAC1", "HDAC3", "EP300", "CREBBP", "BRD4",
            "SMARCA4", "ARID1A", "DNMT1"],
        role: "a chromatin regulator",
        process: "chromatin regulation",
        loss: "some silenced loci can open up",
        stress: None,
    },
    GeneGroup {
        genes: &["HBG1", "HBG2", "GYPA", "TFRC", "FTH1", "FTL", "SLC25A37", "ALAS2"],
        role: "an erythroid or iron-handling gene",
        process: "haemoglobin production and iron handling",
        loss: "iron and haem handling shift",
        stress: None,
    },
    GeneGroup {
        genes: &["MTHFD1", "TXNRD1", "GPX4", "SOD1", "SOD2"],
        role: "a redox or one-carbon enzyme",
        process: "redox balance",
        loss: "oxidative stress rises slightly",
        stress: None,
    },
];

/// Transcription factors and the targets they activate; `Some(cell line)` where the link
/// holds only there (the erythroid program of K562).
#[rustfmt::skip]
const ACTIVATED_TARGETS: &[(&str, &[&str], Option<&str>)] = &[
    ("XBP1", &["DNAJB9", "SEL1L", "HSPA5"], None),
    ("ATF6", &["HSPA5", "HSP90B1", "CALR", "PDIA4"], None),
    ("ATF4", &["DDIT3", "ATF3", "MTHFD1"], None),
    ("MYC", &["RPL3", "RPL5", "RPL11", "RPS6", "RPS19", "EIF4E"], None),
    ("MAX", &["RPL3", "RPL5", "RPL11", "RPS6", "EIF4E"], None),
    ("TP53", &["CDKN1A", "BBC3", "BAX", "PMAIP1"], None),
    ("SREBF2", &["LDLR", "HMGCR", "INSIG1"], None),
    ("SREBF1", &["FASN", "SCD", "ACACA"], None),
    ("HIF1A", &["LDHA", "PKM", "SLC2A1", "HK2"], None),
    ("GATA1", &["HBG1", "HBG2", "GYPA", "ALAS2", "TAL1"], Some("K562")),
    ("TAL1", &["HBG1", "HBG2", "GYPA"], Some("K562")),
    ("TFEB", &["LAMP1", "SQSTM1", "MAP1LC3B"], None),
    ("NFE2L2", &["TXNRD1", "G6PD"], None),
    ("E2F1", &["CDK1", "MAD2L1", "BUB1"], None),
    ("STAT3", &["SOCS3", "MCL1"], None),
    ("RELA", &["XIAP", "BCL2L1"], None),
];

/// Repressors and the genes their loss releases.
const REPRESSED_TARGETS: &[(&str, &[&str])] = &[
    ("EZH2", &["CDKN2A"]),
    ("SUZ12", &["CDKN2A"]),
    ("INSIG1", &["LDLR", "HMGCR"]),
];

/// How the knocked-down gene reaches the target gene, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// The knocked-down gene is a transcription factor that activates the target.
    ActivatorLost,
    /// The knocked-down gene represses the target.
    RepressorLost,
    /// Losing the gene sets off a stress the target responds to.
    Stress(Stress),
    Unrelated,
}

impl Relation {
    fn gold(self) -> Class {
        match self {
            Relation::ActivatorLost | Relation::Stress(Stress::GrowthArrest) => Class::Down,
            Relation::RepressorLost | Relation::Stress(_) => Class::Up,
            Relation::Unrelated => Class::Unchanged,
        }
    }
}

fn relation(perturbed: &str, target: &str, cell_line: &str) -> Relation {
    if perturbed == target {
        return Relation::Unrelated;
    }
    let activates = ACTIVATED_TARGETS.iter().any(|(factor, targets, only_in)| {
        *factor == perturbed
            && targets.contains(&target)
            && only_in.is_none_or(|line| line == cell_line)
    });
    if activates {
        return Relation::ActivatorLost;
    }
    let represses = REPRESSED_TARGETS
        .iter()
        .any(|(repressor, targets)| *repressor == perturbed && targets.contains(&target));
    if represses {
        return Relation::RepressorLost;
    }
    let stress = group_of(perturbed).and_then(|group| group.stress);
    if let Some(facts) = stress.and_then(stress_facts)
        && facts.responders.contains(&target)
    {
        return Relation::Stress(facts.stress);
    }
    Relation::Unrelated
}

fn group_of(gene: &str) -> Option<&'static GeneGroup> {
    GROUPS.iter().find(|group| group.genes.contains(&gene))
}

fn stress_facts(stress: Stress) -> Option<&'static StressFacts> {
    STRESSES.iter().find(|facts| facts.stress == stress)
}

fn all_genes() -> Vec<&'static str> {
    GROUPS
        .iter()
        .flat_map(|group| group.genes.iter().copied())
        .collect()
}

/// A typical wrong turn that leads to a given wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flaw {
    answer: Class,
    variant: usize,
}

/// Per-question facts shared by all its traces.
struct Question {
    id: String,
    prompt: String,
    perturbed: &'static str,
    target: &'static str,
    cell_line: &'static str,
    relation: Relation,
    gold: Class,
    /// The model's belief over (up, down, none): what its samples draw from.
    belief: [f64; 3],
    /// The mistake the model keeps making on this question (its favourite wrong answer).
    systematic_flaw: Flaw,
    difficulty: f64,
    labelled: bool,
}

impl Question {
    fn greedy_answer(&self) -> Class {
        let mut best = Class::Unchanged;
        for class in Class::ALL {
            if self.belief[class.index()] > self.belief[best.index()] {
                best = class;
            }
        }
        best
    }
}

/// The kind of sentence a token belongs to: how sure the model is of its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Frame,
    Fact,
    Link,
    Flaw,
    ConfidentFlaw,
    Hedge,
    Check,
    Conclusion,
    Final,
}

impl Kind {
    /// How often a word of this kind is a real choice (a "fork") rather than near-certain.
    fn fork_rate(self) -> f64 {
        match self {
            Kind::Frame | Kind::Final => 0.012,
            Kind::Conclusion => 0.03,
            Kind::Fact => 0.04,
            Kind::Link | Kind::ConfidentFlaw => 0.06,
            Kind::Check => 0.07,
            Kind::Hedge => 0.14,
            Kind::Flaw => 0.15,
        }
    }
}

/// Bit flags of a word, from the slot it came from.
const ENTITY: u8 = 1;
const DECISION: u8 = 2;

struct Token {
    text: String,
    kind: Kind,
    flags: u8,
}

/// Values of the template slots for one trace.
struct Slots<'a> {
    question: &'a Question,
    /// The class the trace argues for.
    answer: Class,
    /// The class it weighs against it.
    other: Class,
    transcription_factor: &'static str,
    pathway: &'static str,
}

impl Slots<'_> {
    fn value(&self, name: &str) -> Option<(&'static str, u8)> {
        let question = self.question;
        let perturbed_group = group_of(question.perturbed);
        let target_group = group_of(question.target);
        let stress = perturbed_group
            .and_then(|group| group.stress)
            .and_then(stress_facts);
        Some(match name {
            "P" => (question.perturbed, ENTITY),
            "G" => (question.target, ENTITY),
            "C" => (question.cell_line, ENTITY),
            "TF" => (self.transcription_factor, ENTITY),
            "PATH" => (self.pathway, ENTITY),
            "ROLE" => (perturbed_group.map_or("a less studied gene", |g| g.role), 0),
            "PROC" => (
                perturbed_group.map_or("an unclear process", |g| g.process),
                0,
            ),
            "LOSS" => (
                perturbed_group.map_or("little is known to change", |g| g.loss),
                0,
            ),
            "GROLE" => (target_group.map_or("a less studied gene", |g| g.role), 0),
            "GPROC" => (target_group.map_or("an unclear process", |g| g.process), 0),
            "STRESS" => (stress.map_or("a mild stress", |s| s.name), 0),
            "EFF" => (
                stress.map_or("stress-responsive factors", |s| s.effector),
                ENTITY,
            ),
            "RESP" => (
                stress.map_or("a general stress response", |s| s.response),
                0,
            ),
            "DIR" => (self.answer.direction_word(), DECISION),
            "ODIR" => (self.other.direction_word(), 0),
            "ANS" => (self.answer.answer_word(), DECISION),
            _ => return None,
        })
    }
}

struct Sentences;

impl Sentences {
    const OPENINGS: &[&str] = &[
        "Okay, the question is whether {G} expression changes when {P} is knocked down in {C} cells.",
        "We need to predict what a knockdown of {P} does to {G} in {C} cells: up, down or no change.",
        "Let me think about what knocking down {P} does to {G} in {C} cells.",
        "So this is a CRISPRi knockdown of {P} in {C} cells, and the readout is {G} mRNA.",
        "First I should recall what {P} does, and then ask whether that reaches {G} in {C} cells.",
    ];
    const PERTURBED_FACTS: &[&str] = &[
        "{P} is {ROLE}.",
        "Let me recall: {P} is {ROLE}, involved in {PROC}.",
        "As far as I remember, {P} is {ROLE}, so it matters for {PROC}.",
        "{P} is {ROLE}; it works in {PROC}.",
    ];
    const LOSSES: &[&str] = &[
        "Knocking it down should mean that {LOSS}.",
        "With less {P}, {LOSS}.",
        "So after the knockdown, {LOSS}.",
        "If {P} drops, then {LOSS}.",
    ];
    const TARGET_FACTS: &[&str] = &[
        "Now {G}: it is {GROLE}.",
        "What about {G}? {G} is {GROLE}, involved in {GPROC}.",
        "{G} is {GROLE}, so the question is whether anything here touches {GPROC}.",
        "Next, {G}. It is {GROLE}.",
    ];
    const STRESS_LINKS: &[&str] = &[
        "That is {STRESS}, and {EFF} respond to it by switching on their target genes.",
        "{G} is one of the genes that {RESP} turns on, so it should rise.",
        "In Perturb-seq screens, knockdowns that cause {STRESS} reliably raise {G}.",
        "So the chain is: less {P}, then {STRESS}, then {EFF} activity, then more {G}.",
    ];
    const GROWTH_LINKS: &[&str] = &[
        "Cells that grow or divide more slowly turn down cell-cycle and ribosome genes such as {G}.",
        "{G} tracks proliferation, and losing {P} slows proliferation, so {G} should fall.",
        "So the chain is: less {P}, slower growth, less {EFF} activity, and less {G}.",
    ];
    const ACTIVATOR_LINKS: &[&str] = &[
        "{P} binds the {G} promoter and activates it, so with less {P} there should be less {G}.",
        "{G} is a direct target of {P}, so losing {P} should lower {G}.",
        "So the chain is short: less {P} means less activation of {G}.",
    ];
    const REPRESSOR_LINKS: &[&str] = &[
        "{P} keeps {G} silenced, so removing {P} should lift that repression.",
        "{G} is held down by {P}; without it, {G} transcription should climb.",
        "So the chain is: less {P}, less repression, more {G}.",
    ];
    const NO_LINKS: &[&str] = &[
        "I do not see a path from {P} to {G}: they sit in unrelated processes.",
        "{G} does not respond to this kind of defect, as far as I know.",
        "Most knockdowns change a few hundred genes at most, and nothing ties {G} to {PROC}.",
        "So I expect no real change in {G}.",
    ];
    /// Wrong turns towards "down", "up" and "none", in that order of the arrays.
    const FLAWS_TO_DOWN: &[&str] = &[
        "Wait, {G} is the gene being knocked down here, so its own mRNA has to fall.",
        "{P} is probably a transcription factor that activates {G}, so losing it should lower {G}.",
        "Stress from losing {P} shuts down most transcription, so {G} should fall with everything else.",
        "Since {P} holds {G} in check, removing {P} should pull {G} down too.",
    ];
    const FLAWS_TO_UP: &[&str] = &[
        "Any knockdown stresses the cell, and stressed cells switch on {G}.",
        "More {P} means more {PROC}, and that should push {G} up.",
        "{G} is a stress gene, so a perturbation like this one should induce it.",
        "With {P} gone, the cell will compensate by raising {G}, whatever {G} does.",
    ];
    const FLAWS_TO_NONE: &[&str] = &[
        "Knockdowns rarely change more than a handful of genes, so {G} is probably untouched.",
        "{C} cells should buffer a loss like this, so I doubt {G} moves.",
        "The chain from {P} to {G} has too many steps to matter, so the effect should wash out.",
        "{G} behaves like a housekeeping gene here, so its level should stay flat.",
    ];
    const COUNTERS: &[&str] = &[
        "Could {G} instead be {ODIR}? That would need a link I cannot find, so probably not.",
        "One could argue for {ODIR}, but that argument does not hold up here.",
        "Wait, what if the effect goes the other way? No, the mechanism points one way.",
        "Let me test the alternative: if {G} were {ODIR}, something else would have to drive it, and I see nothing.",
    ];
    const CHECKS: &[&str] = &[
        "Let me double-check the setup: this is a loss of {P}, not a gain.",
        "The readout is {G} mRNA in {C} cells, measured a few days after the guide goes in.",
        "CRISPRi knockdowns are usually strong, so {P} should be well below its normal level.",
        "{C} cells have their own quirks, but the core biology here should still apply.",
        "A paralog of {P} might take over part of its job, which would soften the effect.",
        "{G} mRNA is not especially short-lived, so a change in transcription would show up.",
        "Is there feedback from {G} back onto {P}? Not that I know of.",
        "Let me restate what I have so far: {P} is {ROLE}, and {G} is {GROLE}.",
        "It also matters whether {G} is expressed in {C} cells to begin with; it is detectable there.",
        "The {PATH} pathway is active in {C} cells, but it does not obviously involve {G}.",
        "I should not confuse knockdown with overexpression: here {P} goes down.",
        "{P} and {G} are not in the same complex, so any effect would go through transcription.",
        "Timing matters too: a secondary effect needs a few days, which the screen allows.",
        "Let me think about whether {PROC} connects to {GPROC} at all; I do not see a direct connection.",
        "{TF} is another factor that could matter here, but I have no reason to think it changes.",
        "Okay, so far so good.",
        "Right.",
        "Hmm, let me think about this more carefully.",
        "The guide could have off-target effects, but a good screen controls for that.",
        "If the cells were dying, many genes would shift at once, but this knockdown is not lethal that fast.",
        "Another angle is the {PATH} pathway, which {C} cells rely on for growth.",
        "Let me go through the logic once more, step by step.",
    ];
    const HEDGES: &[&str] = &[
        "Hmm, I am not fully sure about this step.",
        "Wait, let me reconsider.",
        "Actually, that link may be weaker than I think.",
        "On the other hand, {C} cells might respond differently from other lines.",
        "I keep going back and forth on this.",
        "This is where I am least confident.",
        "But I might be misremembering what {P} does.",
        "Then again, the data from {C} cells might not match the textbook picture.",
        "I need to be careful not to overthink this.",
        "Hmm, that does not fully add up.",
    ];
    const CONCLUSIONS: &[&str] = &[
        "So {G} should be {DIR} after the knockdown.",
        "Putting it together, I expect {G} to be {DIR} in {C} cells.",
        "Overall, {G} is most likely {DIR}.",
        "My conclusion is that {G} is {DIR}.",
    ];
    const UNDECIDED: &[&str] = &[
        "I cannot decide between {DIR} and {ODIR} from what I know.",
        "Both directions seem possible, and I do not have enough to choose.",
    ];
    const FINAL: &str = "Final answer: {ANS}";

    fn flaws_towards(answer: Class) -> &'static [&'static str] {
        match answer {
            Class::Up => Self::FLAWS_TO_UP,
            Class::Down => Self::FLAWS_TO_DOWN,
            Class::Unchanged => Self::FLAWS_TO_NONE,
        }
    }

    fn links(relation: Relation) -> &'static [&'static str] {
        match relation {
            Relation::ActivatorLost => Self::ACTIVATOR_LINKS,
            Relation::RepressorLost => Self::REPRESSOR_LINKS,
            Relation::Stress(Stress::GrowthArrest) => Self::GROWTH_LINKS,
            Relation::Stress(_) => Self::STRESS_LINKS,
            Relation::Unrelated => Self::NO_LINKS,
        }
    }

    #[cfg(test)]
    fn every_template() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = Vec::new();
        for list in [
            Self::OPENINGS,
            Self::PERTURBED_FACTS,
            Self::LOSSES,
            Self::TARGET_FACTS,
            Self::STRESS_LINKS,
            Self::GROWTH_LINKS,
            Self::ACTIVATOR_LINKS,
            Self::REPRESSOR_LINKS,
            Self::NO_LINKS,
            Self::FLAWS_TO_DOWN,
            Self::FLAWS_TO_UP,
            Self::FLAWS_TO_NONE,
            Self::COUNTERS,
            Self::CHECKS,
            Self::HEDGES,
            Self::CONCLUSIONS,
            Self::UNDECIDED,
        ] {
            all.extend_from_slice(list);
        }
        all.push(Self::FINAL);
        all
    }
}

const PATHWAYS: &[&str] = &[
    "mTORC1", "MAPK", "PI3K-AKT", "NF-kB", "p53", "Wnt", "JAK-STAT", "Hippo", "TGF-beta", "Notch",
];
const TRANSCRIPTION_FACTORS: &[&str] = &[
    "ATF4", "XBP1", "MYC", "TP53", "NFE2L2", "CEBPB", "SREBF2", "HIF1A", "E2F1", "STAT3", "YY1",
];

/// How a trace ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Answered,
    /// Still weighing the two answers when the token limit cuts it off.
    CutOff,
    /// Says it cannot decide and stops without an answer.
    Undecided,
}

/// What a written trace was.
struct TraceOutcome {
    answer: Option<Class>,
    n_tokens: usize,
}

/// The PRNG, the question walk and the reused buffers.
struct DemoWriter<'a> {
    options: &'a DemoOptions,
    rng: SplitMix64,
    genes: Vec<&'static str>,
    up_questions: Vec<(&'static str, &'static str, &'static str)>,
    down_questions: Vec<(&'static str, &'static str, &'static str)>,
    used_ids: HashSet<String>,
    tokens: Vec<Token>,
    line: Vec<u8>,
}

impl<'a> DemoWriter<'a> {
    fn new(options: &'a DemoOptions) -> Self {
        let genes = all_genes();
        let mut up_questions = Vec::new();
        let mut down_questions = Vec::new();
        for &perturbed in &genes {
            for &target in &genes {
                for &cell_line in CELL_LINES {
                    match relation(perturbed, target, cell_line).gold() {
                        Class::Up => up_questions.push((perturbed, target, cell_line)),
                        Class::Down => down_questions.push((perturbed, target, cell_line)),
                        Class::Unchanged => {}
                    }
                }
            }
        }
        Self {
            options,
            rng: SplitMix64::new(options.seed),
            genes,
            up_questions,
            down_questions,
            used_ids: HashSet::new(),
            tokens: Vec::new(),
            line: Vec::new(),
        }
    }

    /// A question of a class drawn with PerturbQA's balance (mostly "no change"), on a
    /// (perturbed, target, cell line) triple not asked before.
    fn draw_question(&mut self) -> anyhow::Result<Question> {
        let draw = self.rng.next_unit();
        let wanted = if draw < 0.4 {
            Class::Unchanged
        } else if draw < 0.75 {
            Class::Down
        } else {
            Class::Up
        };
        let mut triple = None;
        for _attempt in 0..10_000 {
            let candidate = match wanted {
                Class::Up => self
                    .up_questions
                    .get(self.rng.below(self.up_questions.len()))
                    .copied(),
                Class::Down => self
                    .down_questions
                    .get(self.rng.below(self.down_questions.len()))
                    .copied(),
                Class::Unchanged => {
                    let perturbed = self.genes.get(self.rng.below(self.genes.len())).copied();
                    let target = self.genes.get(self.rng.below(self.genes.len())).copied();
                    let cell_line = self.rng.pick(CELL_LINES);
                    perturbed.zip(target).and_then(|(perturbed, target)| {
                        (relation(perturbed, target, cell_line) == Relation::Unrelated
                            && perturbed != target)
                            .then_some((perturbed, target, cell_line))
                    })
                }
            };
            if let Some((perturbed, target, cell_line)) = candidate
                && !self
                    .used_ids
                    .contains(&question_id(perturbed, target, cell_line))
            {
                triple = Some((perturbed, target, cell_line));
                break;
            }
        }
        let (perturbed, target, cell_line) =
            triple.context("ran out of distinct demo questions")?;
        let id = question_id(perturbed, target, cell_line);
        self.used_ids.insert(id.clone());
        let relation = relation(perturbed, target, cell_line);
        let gold = relation.gold();
        // Skewed towards easy questions; "no change" is harder than it looks, because models
        // like to find a mechanism.
        let mut difficulty = self.rng.next_unit().powf(1.3);
        if gold == Class::Unchanged {
            difficulty = (difficulty + 0.15).min(1.0);
        }
        let [first_wrong, second_wrong] = gold.others();
        let favourite_wrong = if self.rng.chance(0.5) {
            first_wrong
        } else {
            second_wrong
        };
        let other_wrong = if favourite_wrong == first_wrong {
            second_wrong
        } else {
            first_wrong
        };
        let p_gold =
            (0.96 - 0.72 * difficulty + 0.08 * self.rng.standard_normal()).clamp(0.2, 0.99);
        let mut belief = [0.0; 3];
        belief[gold.index()] = p_gold;
        belief[favourite_wrong.index()] = (1.0 - p_gold) * 0.75;
        belief[other_wrong.index()] = (1.0 - p_gold) * 0.25;
        let systematic_flaw = Flaw {
            answer: favourite_wrong,
            variant: self
                .rng
                .below(Sentences::flaws_towards(favourite_wrong).len()),
        };
        let prompt = format!(
            "Knockdown of {perturbed} in {cell_line} cells. Is {target} upregulated, downregulated, or unchanged? Answer with up, down or none."
        );
        let labelled = self.rng.chance(self.options.labelled_fraction);
        Ok(Question {
            id,
            prompt,
            perturbed,
            target,
            cell_line,
            relation,
            gold,
            belief,
            systematic_flaw,
            difficulty,
            labelled,
        })
    }

    /// Writes one trace of `question` into `self.line`.
    fn write_trace(
        &mut self,
        question: &Question,
        question_number: u64,
        trace_index: u64,
    ) -> TraceOutcome {
        let greedy = trace_index == 0;
        let answer = if greedy {
            question.greedy_answer()
        } else {
            let draw = self.rng.next_unit();
            let [p_up, p_down, _] = question.belief;
            if draw < p_up {
                Class::Up
            } else if draw < p_up + p_down {
                Class::Down
            } else {
                Class::Unchanged
            }
        };
        let correct = answer == question.gold;
        let unanswered_chance =
            (0.012 + 0.07 * question.difficulty) * if greedy { 0.4 } else { 1.0 };
        let ending = if self.rng.chance(unanswered_chance) {
            if self.rng.chance(0.5) {
                Ending::CutOff
            } else {
                Ending::Undecided
            }
        } else {
            Ending::Answered
        };
        let flaw = if correct {
            None
        } else if answer == question.systematic_flaw.answer && self.rng.chance(0.7) {
            Some(question.systematic_flaw)
        } else {
            Some(Flaw {
                answer,
                variant: self.rng.below(Sentences::flaws_towards(answer).len()),
            })
        };
        // A systematic mistake is often stated confidently: token log-probs cannot see it,
        // only disagreement with the other samples can.
        let confident_flaw = flaw.is_some() && self.rng.chance(0.45);
        let other = if correct {
            *self.rng_pick_class(&question.gold.others())
        } else {
            question.gold
        };
        let slots = Slots {
            question,
            answer,
            other,
            transcription_factor: self.rng.pick(TRANSCRIPTION_FACTORS),
            pathway: self.rng.pick(PATHWAYS),
        };
        // Hard questions and wrong answers take longer; the wording style varies by trace.
        let verbosity = (0.45 * self.rng.standard_normal()).exp();
        let median = 110.0
            * (1.1 * question.difficulty).exp()
            * if correct { 1.0 } else { 1.2 }
            * if greedy { 0.85 } else { 1.0 };
        let target_tokens = (median * verbosity).clamp(MIN_TARGET_TOKENS, MAX_TOKENS as f64 - 60.0);
        self.tokens.clear();
        self.compose(&slots, flaw, confident_flaw, ending, target_tokens as usize);
        let style = TraceStyle::draw(&mut self.rng, question, greedy);
        let answered = ending == Ending::Answered;
        self.build_line(
            question,
            question_number,
            trace_index,
            &style,
            answered.then_some(answer),
        );
        TraceOutcome {
            answer: answered.then_some(answer),
            n_tokens: self.tokens.len(),
        }
    }

    fn rng_pick_class<'c>(&mut self, classes: &'c [Class; 2]) -> &'c Class {
        if self.rng.chance(0.5) {
            &classes[0]
        } else {
            &classes[1]
        }
    }

    fn pick_template(&mut self, templates: &[&'static str]) -> &'static str {
        self.rng.pick(templates)
    }

    /// Lays out the trace's sentences as tokens in `self.tokens`.
    fn compose(
        &mut self,
        slots: &Slots<'_>,
        flaw: Option<Flaw>,
        confident_flaw: bool,
        ending: Ending,
        target_tokens: usize,
    ) {
        let question = slots.question;
        let opening = self.pick_template(Sentences::OPENINGS);
        self.sentence(opening, slots, Kind::Frame);
        let fact = self.pick_template(Sentences::PERTURBED_FACTS);
        self.sentence(fact, slots, Kind::Fact);
        let loss = self.pick_template(Sentences::LOSSES);
        self.sentence(loss, slots, Kind::Fact);
        self.paragraph();
        let target_fact = self.pick_template(Sentences::TARGET_FACTS);
        self.sentence(target_fact, slots, Kind::Fact);
        let argue = |writer: &mut Self| match flaw {
            None => {
                let link = writer.pick_template(Sentences::links(question.relation));
                writer.sentence(link, slots, Kind::Link);
            }
            Some(flaw) => {
                let flaws = Sentences::flaws_towards(flaw.answer);
                let template = flaws.get(flaw.variant).copied().unwrap_or_default();
                let kind = if confident_flaw {
                    Kind::ConfidentFlaw
                } else {
                    Kind::Flaw
                };
                writer.sentence(template, slots, kind);
            }
        };
        argue(self);
        // Room for the conclusion and the final answer.
        let closing_tokens = 22;
        let mut in_paragraph = 0;
        let mut checks = Deck::new(Sentences::CHECKS.len());
        let mut hedges = Deck::new(Sentences::HEDGES.len());
        let hedge_chance = 0.06
            + 0.2 * question.difficulty
            + if flaw.is_some() && !confident_flaw {
                0.12
            } else {
                0.0
            };
        let limit = match ending {
            Ending::CutOff => MAX_TOKENS,
            Ending::Answered | Ending::Undecided => target_tokens.saturating_sub(closing_tokens),
        };
        while self.tokens.len() < limit {
            if in_paragraph >= 3 && self.rng.chance(0.4) {
                self.paragraph();
                in_paragraph = 0;
            }
            in_paragraph += 1;
            let draw = self.rng.next_unit();
            if ending == Ending::CutOff && draw < 0.3 {
                // Going round in circles: the other answer's case, then back again.
                let hedge = self.pick_template(Sentences::HEDGES);
                self.sentence(hedge, slots, Kind::Hedge);
                let towards_other = self.pick_template(Sentences::flaws_towards(slots.other));
                self.sentence(towards_other, slots, Kind::Flaw);
                argue(self);
            } else if draw < hedge_chance {
                let index = hedges.next(&mut self.rng);
                let hedge = Sentences::HEDGES.get(index).copied().unwrap_or_default();
                self.sentence(hedge, slots, Kind::Hedge);
            } else if draw < hedge_chance + 0.1 {
                let counter = self.pick_template(Sentences::COUNTERS);
                self.sentence(counter, slots, Kind::Check);
            } else if draw < hedge_chance + 0.18 {
                argue(self);
            } else {
                let index = checks.next(&mut self.rng);
                let check = Sentences::CHECKS.get(index).copied().unwrap_or_default();
                self.sentence(check, slots, Kind::Check);
            }
        }
        match ending {
            Ending::CutOff => self.tokens.truncate(MAX_TOKENS),
            Ending::Undecided => {
                self.paragraph();
                let undecided = self.pick_template(Sentences::UNDECIDED);
                self.sentence(undecided, slots, Kind::Hedge);
            }
            Ending::Answered => {
                self.paragraph();
                let conclusion = self.pick_template(Sentences::CONCLUSIONS);
                self.sentence(conclusion, slots, Kind::Conclusion);
                self.paragraph();
                self.sentence(Sentences::FINAL, slots, Kind::Final);
            }
        }
    }

    fn paragraph(&mut self) {
        if !self.tokens.is_empty() {
            self.tokens.push(Token {
                text: "\n\n".to_owned(),
                kind: Kind::Frame,
                flags: 0,
            });
        }
    }

    /// Fills a template's slots and appends its words and punctuation as tokens; a word
    /// carries its leading space, as BPE tokens do, so the tokens concatenate to the text.
    fn sentence(&mut self, template: &str, slots: &Slots<'_>, kind: Kind) {
        let mut filled = String::new();
        let mut flags: Vec<u8> = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let literal = rest.get(..open).unwrap_or_default();
            filled.push_str(literal);
            flags.resize(filled.len(), 0);
            let after = rest.get(open + 1..).unwrap_or_default();
            let Some(close) = after.find('}') else {
                break;
            };
            let name = after.get(..close).unwrap_or_default();
            let (value, value_flags) = slots.value(name).unwrap_or(("", 0));
            filled.push_str(value);
            flags.resize(filled.len(), value_flags);
            rest = after.get(close + 1..).unwrap_or_default();
        }
        filled.push_str(rest);
        flags.resize(filled.len(), 0);
        let mut position = 0;
        for word in filled.split(' ') {
            let word_flags = flags
                .get(position..position + word.len())
                .map_or(0, |bytes| bytes.iter().fold(0, |all, flag| all | flag));
            position += word.len() + 1;
            if word.is_empty() {
                continue;
            }
            let body = word.trim_end_matches(['.', ',', ':', ';', '?']);
            let punctuation = word.get(body.len()..).unwrap_or_default();
            let space = match self.tokens.last() {
                None => "",
                Some(last) if last.text == "\n\n" => "",
                Some(_) => " ",
            };
            if !body.is_empty() {
                self.tokens.push(Token {
                    text: format!("{space}{body}"),
                    kind,
                    flags: word_flags,
                });
            }
            for mark in punctuation.chars() {
                self.tokens.push(Token {
                    text: mark.to_string(),
                    kind,
                    flags: 0,
                });
            }
        }
    }

    fn build_line(
        &mut self,
        question: &Question,
        question_number: u64,
        trace_index: u64,
        style: &TraceStyle,
        answer: Option<Class>,
    ) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        line.extend_from_slice(b"{\"question_id\":");
        push_json_string(&mut line, &question.id);
        let trace_id = if trace_index == 0 {
            format!("q{question_number}-g")
        } else {
            format!("q{question_number}-s{trace_index}")
        };
        line.extend_from_slice(b",\"trace_id\":");
        push_json_string(&mut line, &trace_id);
        line.extend_from_slice(if trace_index == 0 {
            b",\"greedy\":true"
        } else {
            b",\"greedy\":false"
        });
        line.extend_from_slice(b",\"prompt\":");
        push_json_string(&mut line, &question.prompt);
        let text: String = self
            .tokens
            .iter()
            .map(|token| token.text.as_str())
            .collect();
        line.extend_from_slice(b",\"text\":");
        push_json_string(&mut line, &text);
        if let Some(answer) = answer {
            line.extend_from_slice(b",\"answer\":");
            push_json_string(&mut line, answer.answer_word());
        }
        line.extend_from_slice(b",\"tokens\":[");
        for (index, token) in self.tokens.iter().enumerate() {
            if index > 0 {
                line.push(b',');
            }
            push_json_string(&mut line, &token.text);
        }
        // Each token's log-prob and its top list, drawn together (the chosen value appears
        // in both, byte for byte).
        let mut log_probs = Vec::with_capacity(self.tokens.len());
        let mut top_lists: Vec<u8> = Vec::new();
        for (index, token) in self.tokens.iter().enumerate() {
            if index > 0 {
                top_lists.push(b',');
            }
            let chosen = if token.flags & DECISION != 0 {
                decision_token(&mut self.rng, question, token, &mut top_lists)
            } else {
                word_token(&mut self.rng, style, token, &mut top_lists)
            };
            log_probs.push(chosen);
        }
        line.extend_from_slice(b"],\"logprobs\":[");
        for (index, value) in log_probs.iter().enumerate() {
            if index > 0 {
                line.push(b',');
            }
            push_number(&mut line, *value);
        }
        line.extend_from_slice(b"],\"top_logprobs\":[");
        line.extend_from_slice(&top_lists);
        line.push(b']');
        if question.labelled {
            line.extend_from_slice(b",\"label\":");
            push_json_string(&mut line, question.gold.answer_word());
        }
        line.extend_from_slice(b"}\n");
        self.line = line;
    }
}

/// Cycles through `0..len` in a random order, reshuffling each round, so a long trace
/// repeats itself only after it has used every sentence once.
struct Deck {
    order: Vec<usize>,
    next: usize,
}

impl Deck {
    fn new(len: usize) -> Self {
        Self {
            order: (0..len).collect(),
            next: len,
        }
    }

    fn next(&mut self, rng: &mut SplitMix64) -> usize {
        if self.next >= self.order.len() {
            for index in (1..self.order.len()).rev() {
                self.order.swap(index, rng.below(index + 1));
            }
            self.next = 0;
        }
        let value = self.order.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        value
    }
}

/// Per-trace knobs of the log-prob model: how often words are real choices, how deep those
/// choices go, and how flat the alternatives are (a wording style, unrelated to being right).
struct TraceStyle {
    fork_scale: f64,
    fork_depth: f64,
    /// Share of forks whose alternatives are about as likely as each other.
    flat_forks: f64,
    certain_depth: f64,
    synonym_rate: f64,
    greedy: bool,
}

impl TraceStyle {
    fn draw(rng: &mut SplitMix64, question: &Question, greedy: bool) -> Self {
        let noise = (0.45 * rng.standard_normal()).exp();
        // Some traces hesitate often but shallowly (high entropy, modest perplexity),
        // others rarely but deeply: this is what keeps mte from echoing ppl.
        let hesitancy = (0.6 * rng.standard_normal()).exp();
        Self {
            fork_scale: (0.5 + 1.3 * question.difficulty)
                * noise
                * hesitancy
                * if greedy { 0.7 } else { 1.0 },
            fork_depth: (0.6 + 0.6 * question.difficulty) / hesitancy,
            flat_forks: (0.3 * hesitancy).min(0.9),
            certain_depth: 0.003 + 0.012 * question.difficulty,
            synonym_rate: 0.01 + 0.12 * rng.next_unit().powi(2),
            greedy,
        }
    }
}

/// Draws an ordinary token's log-prob and writes its top list; returns the log-prob.
fn word_token(rng: &mut SplitMix64, style: &TraceStyle, token: &Token, out: &mut Vec<u8>) -> f64 {
    let is_mark = token.text.len() <= 2 && !token.text.chars().any(char::is_alphanumeric);
    let mut fork_rate = token.kind.fork_rate() * style.fork_scale;
    if token.flags & ENTITY != 0 {
        fork_rate += 0.12;
    }
    if is_mark {
        fork_rate *= 0.3;
    }
    let (chosen, rank, flat) = if rng.chance(fork_rate.min(0.9)) {
        let depth = style.fork_depth * if token.kind == Kind::Flaw { 1.4 } else { 1.0 };
        let chosen = -rng.exponential(depth).clamp(0.05, 9.0);
        // A sampled trace sometimes takes a token that was not the likeliest.
        let rank = usize::from(!style.greedy && chosen < -0.8 && rng.chance(0.35));
        (chosen, rank, rng.chance(style.flat_forks))
    } else if rng.chance(style.synonym_rate) {
        // A choice between near-synonyms: the model is unsure of the word, not the content.
        let probability = 0.35 + 0.45 * rng.next_unit();
        (probability.ln(), 0, true)
    } else {
        let depth = style.certain_depth * if is_mark { 0.3 } else { 1.0 };
        (-rng.exponential(depth).clamp(1e-6, 0.05), 0, false)
    };
    let chosen = round_significant(chosen);
    write_top_list(rng, chosen, rank, flat, out);
    chosen
}

/// The tokens that state the answer (the direction word of the conclusion and the final
/// answer): their probability is the model's belief in that class. The final answer's top
/// list names the classes, so hovering it shows what else the model considered.
fn decision_token(
    rng: &mut SplitMix64,
    question: &Question,
    token: &Token,
    out: &mut Vec<u8>,
) -> f64 {
    let word = token.text.trim();
    let class = Class::ALL
        .into_iter()
        .find(|class| class.answer_word() == word || class.direction_word() == word)
        .unwrap_or(Class::Unchanged);
    let scale = 0.9 + 0.09 * rng.next_unit();
    let mut ranked: Vec<(Class, f64)> = Class::ALL
        .into_iter()
        .map(|other| {
            (
                other,
                round_significant((question.belief[other.index()] * scale).max(1e-9).ln()),
            )
        })
        .collect();
    ranked.sort_by(|left, right| right.1.total_cmp(&left.1));
    let chosen = ranked
        .iter()
        .find(|(other, _)| *other == class)
        .map_or(-1.0, |(_, value)| *value);
    if token.kind == Kind::Final {
        out.push(b'{');
        for (index, (other, value)) in ranked.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            push_json_string(out, &format!(" {}", other.answer_word()));
            out.push(b':');
            push_number(out, *value);
        }
        out.push(b'}');
    } else {
        let rank = ranked
            .iter()
            .position(|(other, _)| *other == class)
            .unwrap_or(0);
        write_top_list(rng, chosen, rank.min(1), false, out);
    }
    chosen
}

/// Writes `[top-k log-probs]` in descending order with `chosen` at position `rank` (0 or
/// 1): the alternatives share the probability left, each strictly below the one before.
fn write_top_list(rng: &mut SplitMix64, chosen: f64, rank: usize, flat: bool, out: &mut Vec<u8>) {
    let p_chosen = chosen.exp();
    let mut values: Vec<f64> = Vec::with_capacity(TOP_K);
    let mut mass_left = 1.0 - p_chosen;
    if rank == 1 {
        // A likelier token the sampler passed over.
        let p_top = (p_chosen + (1.0 - 2.0 * p_chosen).max(0.0) * (0.15 + 0.6 * rng.next_unit()))
            .min((1.0 - p_chosen) * 0.97)
            .max(p_chosen * 1.05);
        values.push(round_down(p_top.ln(), SIGNIFICANT_DIGITS));
        mass_left -= p_top;
    }
    values.push(chosen);
    let mut previous = chosen;
    while values.len() < TOP_K {
        let share = if flat {
            0.25 + 0.25 * rng.next_unit()
        } else {
            0.55 + 0.4 * rng.next_unit()
        };
        let probability = (mass_left.max(1e-12) * share).max(1e-17);
        mass_left -= probability;
        // Rounded down, so the printed probabilities never add up to more than 1.
        let mut value = round_down(
            probability.ln().min(previous - 0.001).max(-40.0),
            ALTERNATIVE_DIGITS,
        );
        if value >= previous {
            value = round_down(
                previous - (0.1 * previous.abs()).max(0.01),
                ALTERNATIVE_DIGITS,
            );
        }
        values.push(value);
        previous = value;
    }
    out.push(b'[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_number(out, *value);
    }
    out.push(b']');
}

fn question_id(perturbed: &str, target: &str, cell_line: &str) -> String {
    format!("{perturbed}|{target}|{cell_line}")
}

/// `value` with `SIGNIFICANT_DIGITS` significant digits (shortest printing keeps it short).
fn round_significant(value: f64) -> f64 {
    let scale = significant_scale(value, SIGNIFICANT_DIGITS);
    (value * scale).round() / scale
}

/// `value` cut to `digits` significant digits towards −∞ (a smaller probability).
fn round_down(value: f64, digits: i32) -> f64 {
    let scale = significant_scale(value, digits);
    (value * scale).floor() / scale
}

fn significant_scale(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = value.abs().log10().floor() as i32;
    10f64.powi(digits - 1 - magnitude)
}

fn push_number(out: &mut Vec<u8>, value: f64) {
    // Display prints the shortest decimal that reads back as the same f64, never with an
    // exponent: valid JSON.
    let _ = write!(out, "{value}");
}

fn push_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for character in text.chars() {
        match character {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => {
                let mut buffer = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DemoOptions {
        DemoOptions {
            questions: 40,
            ..DEMO_OPTIONS
        }
    }

    fn lines(options: &DemoOptions) -> anyhow::Result<(Vec<serde_json::Value>, DemoStats)> {
        let mut bytes = Vec::new();
        let stats = generate(options, &mut bytes)?;
        let text = String::from_utf8(bytes)?;
        let parsed = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<Vec<serde_json::Value>, _>>()?;
        Ok((parsed, stats))
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() -> anyhow::Result<()> {
        let mut first = Vec::new();
        let mut second = Vec::new();
        generate(&small(), &mut first)?;
        generate(&small(), &mut second)?;
        assert_eq!(first, second);
        let mut other_seed = Vec::new();
        generate(
            &DemoOptions {
                seed: 99,
                ..small()
            },
            &mut other_seed,
        )?;
        assert_ne!(first, other_seed);
        Ok(())
    }

    /// Pins the shipped demo: when this changes, bump `DEMO_STAMP` so existing checkouts
    /// regenerate their `public/demo.jsonl.gz`, then update the hash here.
    #[test]
    fn the_demo_is_pinned_to_its_stamp() -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        generate(&DEMO_OPTIONS, &mut bytes)?;
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
        assert_eq!(
            (DEMO_STAMP, format!("{hash:016x}")),
            ("tracesift demo v2", "fa4b98c442ba0151".to_owned())
        );
        Ok(())
    }

    #[test]
    fn traces_are_well_formed_canonical_records() -> anyhow::Result<()> {
        let (lines, stats) = lines(&small())?;
        assert_eq!(lines.len() as u64, stats.traces);
        assert_eq!(stats.traces, 40 * 9);
        for line in &lines {
            let text = line["text"].as_str().unwrap_or_default();
            let tokens: Vec<&str> = line["tokens"]
                .as_array()
                .map(|tokens| tokens.iter().filter_map(|t| t.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(tokens.concat(), text, "the tokens spell the text");
            let log_probs = line["logprobs"].as_array().cloned().unwrap_or_default();
            let top_lists = line["top_logprobs"].as_array().cloned().unwrap_or_default();
            assert_eq!(log_probs.len(), tokens.len());
            assert_eq!(top_lists.len(), tokens.len());
            for (chosen, top) in log_probs.iter().zip(&top_lists) {
                let chosen = chosen.as_f64().unwrap_or(1.0);
                assert!(chosen < 0.0 && chosen > -40.0, "{chosen}");
                let values: Vec<f64> = match top {
                    serde_json::Value::Array(values) => {
                        values.iter().filter_map(|v| v.as_f64()).collect()
                    }
                    serde_json::Value::Object(entries) => {
                        entries.values().filter_map(|v| v.as_f64()).collect()
                    }
                    other => panic!("a top list must be a list or an object, not {other}"),
                };
                assert!(values.len() >= 3);
                assert!(values.contains(&chosen), "{chosen} in {values:?}");
                let total: f64 = values.iter().map(|value| value.exp()).sum();
                assert!(total <= 1.0 + 1e-3, "top-k probabilities sum to {total}");
                if top.is_array() {
                    assert!(
                        values.windows(2).all(|pair| pair[0] > pair[1]),
                        "{values:?}"
                    );
                }
            }
            match line.get("answer").and_then(|answer| answer.as_str()) {
                Some(answer) => assert!(text.ends_with(&format!("Final answer: {answer}"))),
                None => assert!(!text.to_lowercase().contains("answer"), "{text}"),
            }
        }
        Ok(())
    }

    #[test]
    fn lengths_spread_and_some_traces_are_unanswered() -> anyhow::Result<()> {
        let (_, stats) = lines(&DEMO_OPTIONS)?;
        assert!(stats.min_tokens >= 70, "{stats:?}");
        assert!(stats.min_tokens <= 110, "{stats:?}");
        assert_eq!(stats.max_tokens, MAX_TOKENS, "{stats:?}");
        let unanswered = stats.unanswered as f64 / stats.traces as f64;
        assert!((0.02..0.1).contains(&unanswered), "{stats:?}");
        let accuracy = stats.correct as f64 / (stats.traces - stats.unanswered) as f64;
        assert!((0.6..0.85).contains(&accuracy), "{stats:?}");
        Ok(())
    }

    #[test]
    fn templates_fill_every_slot_and_never_write_answer_early() {
        for template in Sentences::every_template() {
            let mut rest = template;
            while let Some(open) = rest.find('{') {
                let after = rest.get(open + 1..).unwrap_or_default();
                let close = after.find('}').unwrap_or(0);
                let name = after.get(..close).unwrap_or_default();
                let question = Question {
                    id: String::new(),
                    prompt: String::new(),
                    perturbed: "ATF4",
                    target: "DDIT3",
                    cell_line: "K562",
                    relation: Relation::Unrelated,
                    gold: Class::Up,
                    belief: [0.5, 0.3, 0.2],
                    systematic_flaw: Flaw {
                        answer: Class::Down,
                        variant: 0,
                    },
                    difficulty: 0.5,
                    labelled: false,
                };
                let slots = Slots {
                    question: &question,
                    answer: Class::Up,
                    other: Class::Down,
                    transcription_factor: "MYC",
                    pathway: "MAPK",
                };
                assert!(slots.value(name).is_some(), "`{name}` in `{template}`");
                rest = after.get(close + 1..).unwrap_or_default();
            }
            assert!(!template.contains(['"', '\\']), "{template}");
            if template != Sentences::FINAL {
                assert!(!template.to_lowercase().contains("answer"), "{template}");
            }
        }
    }

    #[test]
    fn every_gene_has_one_group_and_the_gold_classes_are_all_there() {
        let genes = all_genes();
        let distinct: HashSet<&str> = genes.iter().copied().collect();
        assert_eq!(distinct.len(), genes.len(), "a gene is in two groups");
        let writer = DemoWriter::new(&DEMO_OPTIONS);
        assert!(writer.up_questions.len() > 100);
        assert!(writer.down_questions.len() > 100);
        assert_eq!(
            relation("XBP1", "DNAJB9", "HepG2").gold(),
            Class::Down,
            "losing an activator lowers its target"
        );
        assert_eq!(relation("SEC61A1", "HSPA5", "K562").gold(), Class::Up);
        assert_eq!(relation("GATA1", "HBG1", "K562").gold(), Class::Down);
        assert_eq!(relation("GATA1", "HBG1", "RPE1").gold(), Class::Unchanged);
    }
}
