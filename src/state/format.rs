//! The log format: how a [`Command`] becomes the bytes of a log entry, and which format the
//! cluster's members agreed to read. A rolling upgrade runs old and new builds side by side,
//! so a leader may write an entry in a format only once every member's build reads it.
//!
//! - Format 0 is what builds before the envelope wrote: the bare bincode of the command.
//! - Format 1 and later: the envelope, `[MARKER, version (u16, big-endian)]` then the bincode
//!   of the command (format 2 adds `SetNodeHealth`, format 3 block volumes). A format-0 entry
//!   starts with the variant index of the command (a small varint), never with [`MARKER`],
//!   so they cannot be confused.
//!
//! The types inside a command (records, plans) are frozen per format by the golden fixtures
//! under `src/state/testdata/` (`log-v0.txt`, `log-v1.txt`, ...): every later build decodes
//! them to the same values. A change that breaks a fixture needs a new format whose decoder migrates
//! the old types explicitly, never an edit of the fixture. The leader raises the agreed format
//! with [`Command::SetLogFormat`] once every member reports it reads it
//! (`ops::format`); a replica whose build reads less cannot join (`Replica::add_member`).

use hekate_raft::codec::{self, CodecError};
use hekate_raft::{StateReader, StoreError, Txn};

use super::command::{Command, Outcome};
use super::keys;
use super::model::OpPlan;

/// The newest format this build writes and reads.
pub const CURRENT: u16 = 3;

/// First byte of an enveloped entry (format 1 and later). bincode's varint never starts a
/// variant index with it.
pub const MARKER: u8 = 0xFF;

/// The format a command first appears in: a leader proposes it only once the members agreed
/// on that format. Every new variant gets a line here.
pub fn needs(cmd: &Command) -> u16 {
    match cmd {
        Command::SetLogFormat { .. } => 1,
        Command::SetNodeHealth { .. } => 2,
        Command::OpFinishBlock { .. } | Command::ImportWithBlock { .. } => 3,
        Command::OpBegin { op } | Command::OpBeginLimited { op, .. } => plan_needs(&op.plan),
        _ => 0,
    }
}

/// The format an operation plan first appears in (it travels inside `OpBegin`). No wildcard:
/// a new plan variant does not compile until it is given its format here.
fn plan_needs(plan: &OpPlan) -> u16 {
    match plan {
        OpPlan::NodeAdd { .. }
        | OpPlan::NodeDelete { .. }
        | OpPlan::NodeState { .. }
        | OpPlan::DeviceAdd { .. }
        | OpPlan::DeviceDelete { .. }
        | OpPlan::DeviceState { .. }
        | OpPlan::DeviceResync { .. }
        | OpPlan::VolumeCreate { .. }
        | OpPlan::VolumeDelete { .. }
        | OpPlan::VolumeExpand { .. }
        | OpPlan::Evict { .. }
        | OpPlan::VolumeClone { .. }
        | OpPlan::VolumeRestriction { .. }
        | OpPlan::Cleanup => 0,
        OpPlan::NodeHealth { .. } => 2,
        OpPlan::BlockVolumeCreate { .. }
        | OpPlan::BlockVolumeDelete { .. }
        | OpPlan::BlockVolumeExpand { .. } => 3,
    }
}

/// Encodes `cmd` in the agreed format. The command that raises the format is written in the
/// format it raises to (every member reported reading it).
pub fn encode(cmd: &Command, agreed: u16) -> Result<Vec<u8>, String> {
    let format = match cmd {
        Command::SetLogFormat { format } => agreed.max(*format),
        _ => agreed,
    }
    .min(CURRENT);
    if needs(cmd) > format {
        return Err(format!(
            "this command needs log format {} but the replicas agreed on format {agreed}: \
             finish upgrading every replica first",
            needs(cmd)
        ));
    }
    encode_as(cmd, format).map_err(|e| e.to_string())
}

/// Encodes `cmd` in `format` (0 or an envelope version), without checks.
pub fn encode_as(cmd: &Command, format: u16) -> Result<Vec<u8>, CodecError> {
    let body = codec::encode(cmd)?;
    if format == 0 {
        return Ok(body);
    }
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(MARKER);
    out.extend_from_slice(&format.to_be_bytes());
    out.extend(body);
    Ok(out)
}

/// Decodes an entry of any format this build knows. Formats 0 to 3 carry the same types
/// (format 1 added the envelope and [`Command::SetLogFormat`], format 2
/// [`Command::SetNodeHealth`], format 3 block volumes: new variants only), so all decode
/// directly; a later format that changes a type
/// adds its migration here.
pub fn decode(bytes: &[u8]) -> Result<Command, CodecError> {
    let Some((&MARKER, rest)) = bytes.split_first() else {
        return codec::decode(bytes);
    };
    let Some((version, body)) = rest.split_first_chunk::<2>() else {
        return Err(CodecError("log entry envelope is truncated".into()));
    };
    match u16::from_be_bytes(*version) {
        1..=3 => codec::decode(body),
        v => Err(CodecError(format!(
            "log entry format {v} is newer than this build reads ({CURRENT}): upgrade this replica"
        ))),
    }
}

/// The format the members agreed on (0 until the first raise).
pub fn agreed(r: &impl StateReader) -> Result<u16, StoreError> {
    match r.get(keys::LOG_FORMAT)? {
        None => Ok(0),
        Some(b) => match <[u8; 2]>::try_from(b.as_slice()) {
            Ok(v) => Ok(u16::from_be_bytes(v)),
            Err(_) => Err(StoreError::Invalid("the agreed log format is corrupt".into())),
        },
    }
}

/// Applies [`Command::SetLogFormat`]: raises the agreed format, never lowers it.
pub fn raise(format: u16, txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
    if format > CURRENT {
        return Ok(Outcome::Invalid(format!(
            "log format {format} is newer than this build's {CURRENT}"
        )));
    }
    if format > agreed(txn)? {
        txn.put(keys::LOG_FORMAT.to_vec(), format.to_be_bytes().to_vec());
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_0_is_bare_bincode_and_format_1_the_envelope() {
        let cmd = Command::OpGc { before: 7 };
        let bare = codec::encode(&cmd).unwrap();
        assert_eq!(encode(&cmd, 0).unwrap(), bare);
        let env = encode(&cmd, 1).unwrap();
        assert_eq!(&env[..3], &[MARKER, 0, 1]);
        assert_eq!(&encode(&cmd, 2).unwrap()[..3], &[MARKER, 0, 2]);
        assert_eq!(&env[3..], &bare[..]);
        assert_eq!(decode(&bare).unwrap(), cmd);
        assert_eq!(decode(&env).unwrap(), cmd);
    }

    #[test]
    fn a_new_variant_waits_for_the_agreed_format_except_the_raise_itself() {
        let raise = Command::SetLogFormat { format: 1 };
        // The raise is written in the format it raises to.
        assert_eq!(encode(&raise, 0).unwrap()[0], MARKER);
        // A raise beyond this build is capped: it cannot write what it does not read.
        assert!(encode(&Command::SetLogFormat { format: 9 }, 0).is_ok());
        assert_eq!(needs(&raise), 1);
        assert_eq!(needs(&Command::OpGc { before: 1 }), 0);
    }

    #[test]
    fn an_unknown_format_or_a_truncated_envelope_is_an_error_naming_it() {
        let e = decode(&[MARKER, 0, 9, 1, 2]).unwrap_err();
        assert!(e.0.contains("log entry format 9 is newer"), "{e}");
        assert!(decode(&[MARKER, 0]).is_err());
        assert!(decode(&[MARKER]).is_err());
    }
}
