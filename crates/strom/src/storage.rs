//! `strom storage verify`: checks a data directory offline — every batch's length,
//! magic, CRC-32C and offsets in every segment — and with `--repair` cuts damaged
//! stretches out of durable segments (what the broker does when it finds them while
//! recovering). The broker trusts sealed segments below its recovery point, so a byte
//! flipped there later is otherwise served as it is.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use strom_log::constants::{
    CLEAN_SHUTDOWN_FILE_NAME, INDEX_INTERVAL_BYTES_DEFAULT, LOG_FILE_SUFFIX, RECOVERY_POINT_FILE_NAME,
};
use strom_log::damage::{check_segment, SegmentCheck};
use strom_log::segment::{parse_segment_file_name, LogSegment};

#[derive(clap::Subcommand)]
pub enum StorageCommand {
    /// Check every partition's segments (CRCs, offsets); exit status 1 when damage is found.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The broker's data directory (`log.dirs`).
    #[arg(long, value_name = "DIR", default_value = "./strom-data")]
    data_dir: PathBuf,
    /// Cut damaged stretches out of the segments (a copy of each is kept as
    /// `*.damaged`). The broker must be stopped.
    #[arg(long)]
    repair: bool,
}

pub fn run(command: StorageCommand) -> Result<()> {
    match command {
        StorageCommand::Verify(args) => verify(&args),
    }
}

fn verify(args: &VerifyArgs) -> Result<()> {
    let dir = &args.data_dir;
    if !dir.join("meta.properties").exists() {
        bail!("{} is not a Strom data directory (no meta.properties)", dir.display());
    }
    // A running broker holds the lock; its active segments are being written.
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".lock"))
        .with_context(|| format!("opening {}", dir.join(".lock").display()))?;
    let running = lock.try_lock().is_err();
    if running && args.repair {
        bail!("a broker is running on {}: stop it before --repair", dir.display());
    }
    if running {
        println!("a broker is running: the last segment of each partition is skipped (it is being written)");
    }
    let partitions = partition_dirs(dir)?;
    let progress = indicatif::ProgressBar::new(partitions.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{spinner} checking {pos}/{len} partitions {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut damaged_partitions = 0;
    let mut damaged_stretches = 0;
    for partition in &partitions {
        progress.set_message(partition.file_name().unwrap_or_default().to_string_lossy().to_string());
        let report = check_partition(partition, running)?;
        progress.inc(1);
        let name = partition.file_name().unwrap_or_default().to_string_lossy().to_string();
        let damage: usize = report.segments.iter().map(|(_, c)| c.damage.len()).sum();
        let overlaps = report.overlaps().len();
        progress.suspend(|| print_partition(&name, &report));
        if damage == 0 && overlaps == 0 {
            continue;
        }
        damaged_stretches += overlaps;
        damaged_partitions += 1;
        damaged_stretches += damage;
        if args.repair {
            for (base, check) in report.segments.iter().filter(|(_, c)| !c.damage.is_empty()) {
                repair_segment(partition, *base).with_context(|| format!("repairing segment {base} of {name}"))?;
                progress.suspend(|| println!("  repaired segment {base}: {} stretch(es) cut out", check.damage.len()));
            }
        }
    }
    progress.finish_and_clear();
    println!(
        "{} partitions checked, {damaged_partitions} with damage ({damaged_stretches} damaged stretches)",
        partitions.len()
    );
    if damaged_stretches > 0 && !args.repair {
        bail!(
            "damage found; stop the broker and run `strom storage verify --repair --data-dir {}` \
             to cut it out (the records in the damaged stretches are lost either way)",
            dir.display()
        );
    }
    Ok(())
}

struct PartitionReport {
    segments: Vec<(i64, SegmentCheck)>,
    skipped_active: bool,
}

impl PartitionReport {
    /// Segments that start below the end of the one before (base offsets out of order,
    /// e.g. a flipped bit in the earlier one's last base offset); the broker refuses to
    /// open such a partition rather than drop either side.
    fn overlaps(&self) -> Vec<(i64, i64)> {
        self.segments
            .windows(2)
            .filter(|pair| pair[1].0 < pair[0].1.next_offset)
            .map(|pair| (pair[1].0, pair[0].1.next_offset))
            .collect()
    }
}

fn partition_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut partitions = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if path.is_dir() && !name.ends_with("-delete") && path.join("partition.metadata").exists() {
            partitions.push(path);
        }
    }
    partitions.sort();
    Ok(partitions)
}

fn check_partition(dir: &Path, running: bool) -> Result<PartitionReport> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_file_name(e.file_name().to_str()?, LOG_FILE_SUFFIX))
        .collect();
    bases.sort_unstable();
    // Durable data as the broker judges it: everything after a clean shutdown, else
    // below the recovery point (a bad tail above it is torn, not damaged).
    let durable_below = if dir.join(CLEAN_SHUTDOWN_FILE_NAME).exists() {
        i64::MAX
    } else {
        std::fs::read_to_string(dir.join(RECOVERY_POINT_FILE_NAME))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(i64::MIN)
    };
    let skipped_active = running && !bases.is_empty();
    if skipped_active {
        bases.pop();
    }
    let mut segments = Vec::new();
    for base in bases {
        let path = dir.join(strom_log::segment::segment_file_name(base, LOG_FILE_SUFFIX));
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let check = check_segment(&file, base, durable_below).with_context(|| format!("reading {}", path.display()))?;
        segments.push((base, check));
    }
    Ok(PartitionReport {
        segments,
        skipped_active,
    })
}

fn print_partition(name: &str, report: &PartitionReport) {
    let batches: u64 = report.segments.iter().map(|(_, c)| c.batches).sum();
    let first = report.segments.first().map_or(0, |(base, _)| *base);
    let end = report.segments.last().map_or(0, |(_, c)| c.next_offset);
    let damage: Vec<_> = report
        .segments
        .iter()
        .flat_map(|(base, c)| c.damage.iter().map(move |d| (base, d)))
        .collect();
    let torn: u64 = report.segments.iter().map(|(_, c)| c.torn_tail_bytes).sum();
    let overlaps = report.overlaps();
    let status = if damage.is_empty() && overlaps.is_empty() {
        "ok"
    } else {
        "DAMAGED"
    };
    let skipped = if report.skipped_active {
        " (active segment skipped)"
    } else {
        ""
    };
    println!(
        "{name}: {status}: {} segments, {batches} batches, offsets {first}..{end}{skipped}",
        report.segments.len()
    );
    for (base, stretch) in damage {
        println!("  segment {base}: {stretch}");
    }
    for (base, end) in overlaps {
        println!(
            "  segment {base} starts below {end}, the end of the segment before it: a damaged base offset \
             (not repaired automatically; the broker will not open this partition)"
        );
    }
    if torn > 0 {
        println!("  {torn} bytes of unflushed tail after a crash: the broker cuts them at start");
    }
}

/// What the broker's recovery does to a durable segment with damage: cut it out,
/// rebuild the indexes, sync.
fn repair_segment(dir: &Path, base: i64) -> Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let (segment, _) = LogSegment::open_and_recover(dir, base, now_ms, INDEX_INTERVAL_BYTES_DEFAULT, i64::MAX)?;
    segment.flush()?;
    Ok(())
}
