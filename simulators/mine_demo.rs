//! The demo's coal mine: one KJ system uploading its networking files to the gateway's FTP
//! server every interval, as a real mine's uploader does (CDDY and FZDY first, then CDSS and
//! FZSS), with a substation that loses its link for a while and a methane excursion the mine
//! answers in its anomaly log.

use super::mine::{slot_files, Faults, MineSpec, Plan, Window};
use std::net::SocketAddr;
use std::time::Duration;
use suppaftp::tokio::AsyncRustlsFtpStream;
use suppaftp::types::FileType;
use tokio::sync::broadcast;

pub struct DemoMine {
    pub ftp: SocketAddr,
    pub mine_code: String,
    pub password: String,
    pub points: usize,
    pub interval: Duration,
}

/// The mine's faults, in seconds after its first file: F002 通信中断 from 60 s to 120 s, a
/// methane excursion on its first point from 30 s to 50 s.
fn faults(code: &str) -> Faults {
    Faults {
        substation_down: vec![(
            format!("{code}F002"),
            Window {
                from_s: 60,
                to_s: 120,
            },
        )],
        methane: vec![(
            format!("{code}01MN0001"),
            Window {
                from_s: 30,
                to_s: 50,
            },
        )],
        ..Faults::default()
    }
}

/// Upload until `stop`; an upload that fails is logged and the next interval tries again.
pub async fn run(m: DemoMine, mut stop: broadcast::Receiver<()>) {
    let mut spec = match MineSpec::new(&m.mine_code, "示范煤矿 (demo)", m.points, 3, offset()) {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "demo mine not started"),
    };
    // People underground: the positioning system's base stations and RYSS files too.
    spec.people = 12;
    let plan = Plan {
        start_ms: crate::model::now_ms(),
        interval_s: m.interval.as_secs().max(1),
        slots: None,
        cddy_every: 60,
        status_binary: false,
        gbk: false,
        line_breaks: false,
        faults: faults(&m.mine_code),
        ycbj_measure: true,
        truncate: None,
        wrong_mine_code: None,
        duplicate: None,
        late_file: None,
        late_by: 0,
        gap: None,
    };
    let mut tick = tokio::time::interval(m.interval);
    for slot in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => return,
        }
        if let Err(e) = upload(&m, &spec, &plan, slot).await {
            tracing::warn!(error = %e, slot, "demo mine: upload failed, next interval tries again");
        }
    }
}

fn offset() -> time::UtcOffset {
    time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC)
}

async fn upload(m: &DemoMine, spec: &MineSpec, plan: &Plan, slot: u64) -> Result<(), String> {
    let e = |e: suppaftp::FtpError| e.to_string();
    let mut s = AsyncRustlsFtpStream::connect_timeout(m.ftp, Duration::from_secs(5))
        .await
        .map_err(e)?;
    s.login(&m.mine_code, &m.password).await.map_err(e)?;
    s.transfer_type(FileType::Binary).await.map_err(e)?;
    for f in slot_files(spec, plan, slot) {
        s.put_file(&f.name, &mut f.bytes.as_slice())
            .await
            .map_err(e)?;
    }
    let _ = s.quit().await;
    Ok(())
}
