//! A session sent to object storage (see [`crate::objects`]): fragments fill the node's tail,
//! full parts are put and committed one compare-and-set each, and Close-Session completes the
//! multipart upload.

#[cfg(test)]
mod tests;

use axum::http::StatusCode;

use super::body::NewBytes;
use super::{Committed, commit};
use crate::App;
use crate::ack::{Code, Refusal};
use crate::objects::Objects;
use crate::packet::FragmentRange;
use crate::sessions::{Session, Target};

/// The bucket, or a refusal when this node has none (its configuration changed under a
/// session that another node, or it before, created).
pub fn objects(app: &App) -> Result<&Objects, Refusal> {
    app.objects.as_ref().ok_or_else(|| {
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL)
            .because("a session on object storage, and this node has none")
    })
}

/// Take a fragment's new bytes into the tail, then put and commit every part it fills (and
/// the last, short one when the upload is whole). `Some`: what to answer instead of an Ack
/// of the bytes held (the session moved on elsewhere).
pub async fn fragment(
    app: &App,
    s: &mut Session,
    range: FragmentRange,
    body: NewBytes,
) -> Result<Option<Committed>, Refusal> {
    let objects = objects(app)?;
    let name = s.key();
    let held = s.held();
    let Target::Object(o) = &mut s.target else {
        return Err(Refusal::bad("not an object session"));
    };
    if o.parts.is_empty() {
        o.part_size = objects.part_size_for(range.total);
    }
    if o.tail > 0 && !objects.spool.holds(&name, o.part_size, held).await {
        // The tail's file lost bytes (removed behind the node's back): never put a part with
        // a hole; the client goes on from the committed count.
        drop_tail(objects, s, &name).await;
        return Ok(Some(Committed::Lost(s.received)));
    }
    objects.spool.write(&name, o.part_size, held, body).await?;
    o.tail = range.last + 1 - s.received;
    s.total = Some(range.total);
    flush(app, objects, s, &name).await
}

/// Put and commit the parts the tail holds whole. If that fails, the tail is dropped (as if
/// the node had died): the client, answered from the committed count, sends it again. A tail
/// kept after a failed put would be acknowledged again without being put, and a client that
/// heard every byte acknowledged would close an upload whose last part is not in the bucket.
async fn flush(
    app: &App,
    objects: &Objects,
    s: &mut Session,
    name: &str,
) -> Result<Option<Committed>, Refusal> {
    loop {
        let (received, total) = (s.received, s.total.unwrap_or(u64::MAX));
        let Target::Object(o) = &mut s.target else {
            return Ok(None);
        };
        let len = o.tail.min(o.part_size);
        let last = received + o.tail == total;
        if len == 0 || (len < o.part_size && !last) {
            return Ok(None);
        }
        let index = o.parts.len();
        let part = match objects.put_part(name, o, index, len).await {
            Ok(part) => part,
            Err(refusal) => {
                drop_tail(objects, s, name).await;
                return Err(refusal);
            }
        };
        o.parts.push(part);
        o.tail -= len;
        match commit(app, s, received + len).await {
            Ok(Committed::Done) => objects.spool.remove(name, index).await,
            Ok(other) => {
                // Lost, or gone: what this node held is not the session's any more.
                objects.spool.forget(name).await;
                return Ok(Some(other));
            }
            Err(refusal) => {
                // Not counted (`commit` put the count back): neither is the part.
                if let Target::Object(o) = &mut s.target {
                    o.parts.pop();
                }
                drop_tail(objects, s, name).await;
                return Err(refusal);
            }
        }
    }
}

/// Forget what this node holds past the committed count.
async fn drop_tail(objects: &Objects, s: &mut Session, name: &str) {
    if let Target::Object(o) = &mut s.target {
        tracing::warn!(session = %s.id, tail = o.tail, "a part cannot be stored: the bytes held past the committed count are dropped, to be sent again");
        o.tail = 0;
    }
    objects.spool.forget(name).await;
}

/// Close-Session of a whole upload to be kept: the object appears at its key. Unless
/// overwriting is allowed, an object already there refuses it (checked first: a store's
/// complete and copy do not ask).
pub async fn finish(app: &App, s: &mut Session, overwrite: bool) -> Result<(), Refusal> {
    let objects = objects(app)?;
    let name = s.key();
    let Target::Object(o) = &s.target else {
        return Err(Refusal::bad("not an object session"));
    };
    let taken = || Refusal::denied("the object exists and may not be overwritten");
    if o.staged {
        // Completed at the last byte, for the server application: copied to its key.
        if !overwrite && objects.exists(&o.key).await? {
            if objects.exists(&objects.staged(&name, "request")).await? {
                return Err(taken());
            }
            // Copied before a crash, and what was staged deleted.
            return Ok(());
        }
        return objects.place_staged(&name, o).await;
    }
    if !overwrite && !o.completing && objects.exists(&o.key).await? {
        return Err(taken());
    }
    seal(app, s).await?;
    objects.spool.forget(&name).await;
    Ok(())
}

/// Complete the multipart upload (at the key, or staged for a server application), recording
/// first that it is being completed: a Close-Session re-sent after a crash then knows the
/// object there may be this session's own.
pub async fn seal(app: &App, s: &mut Session) -> Result<(), Refusal> {
    let objects = objects(app)?;
    let total = s.received;
    let Target::Object(o) = &mut s.target else {
        return Err(Refusal::bad("not an object session"));
    };
    if !o.completing {
        o.completing = true;
        match commit(app, s, total).await? {
            Committed::Done => {}
            Committed::Lost(_) | Committed::Gone => {
                return Err(Refusal::session_not_found().because("the session moved meanwhile"));
            }
        }
    }
    let Target::Object(o) = &s.target else {
        return Err(Refusal::bad("not an object session"));
    };
    objects.complete(&s.key(), o, total).await
}
