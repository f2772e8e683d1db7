//! One SSH connection: authentication by key, then sessions bridged to shells in the site's
//! terminal container.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    sync::atomic::{AtomicBool, Ordering},
};

use futures::StreamExt as _;
use platform::{
    Actor, Platform,
    grants::Grant,
    sites::{ExecControl, ExecInput, LogStream, ShellRequest, Site},
};
use russh::{
    Channel, ChannelId,
    keys::HashAlg,
    server::{Auth, ChannelOpenHandle, Handle, Msg, Session, VerifiedPublicKey},
};
use tokio::{io::AsyncWriteExt as _, sync::Mutex};

use crate::{Error, limiter::Limiter};

/// Login names longer than this are refused before any lookup.
const MAX_LOGIN: usize = 64;

/// Makes a [`Connection`] per client.
pub(crate) struct Server {
    pub(crate) platform: Platform,
    pub(crate) limiter: Limiter,
    pub(crate) public_port: u16,
}

impl Server {
    /// The handler of a new connection; it sets `authenticated` once the client is in.
    pub(crate) fn connection(&mut self, peer: SocketAddr, authenticated: Arc<AtomicBool>) -> Connection {
        Connection {
            platform: self.platform.clone(),
            limiter: self.limiter.clone(),
            public_port: self.public_port,
            ip: peer.ip(),
            login: None,
            grant: None,
            alive: None,
            controls: Arc::default(),
            channels: HashMap::new(),
            authenticated,
        }
    }
}

/// What the login is to (who logged in is in the connection's grant).
enum Login {
    /// A site's shell.
    Site { site: Box<Site> },
    /// The list of one's sites.
    Listing,
}

/// A session channel, before and after its shell starts.
#[derive(Default)]
struct ChannelState {
    /// The channel itself until it is known what it is for: SFTP takes it over; a shell lets
    /// it go (an unread channel would stall the connection once its buffer fills).
    channel: Option<Channel<Msg>>,
    size: Option<(u16, u16)>,
    tty: bool,
    /// Given over to SFTP.
    sftp: bool,
    input: Option<Arc<Mutex<ExecInput>>>,
    control: Option<ExecControl>,
}

pub(crate) struct Connection {
    platform: Platform,
    limiter: Limiter,
    public_port: u16,
    ip: IpAddr,
    login: Option<Login>,
    /// What the login was granted on: checked again for every channel, and watched while
    /// the connection lasts (see `guard`).
    grant: Option<Grant>,
    /// Held while the connection lives, once the watch on `grant` runs: its end stops it.
    alive: Option<tokio::sync::oneshot::Sender<()>>,
    /// The shells this connection started, to hang up when its access ends.
    controls: Arc<std::sync::Mutex<Vec<ExecControl>>>,
    channels: HashMap<ChannelId, ChannelState>,
    authenticated: Arc<AtomicBool>,
}

/// Ends the connection — its shells hung up, its SFTP sessions and channels closed — once
/// `grant` no longer holds (the account deactivated, the key or the membership removed, the
/// site disabled or deleted), telling the client why.
async fn guard(
    platform: Platform,
    grant: Grant,
    handle: Handle,
    controls: Arc<std::sync::Mutex<Vec<ExecControl>>>,
    closed: tokio::sync::oneshot::Receiver<()>,
) {
    let reason = tokio::select! {
        reason = async {
            // Grounds that do not hold yet (a disabled site's login) are each channel's to
            // refuse, with the reason and an exit status as sshd does; once they hold, losing
            // them ends it all.
            platform.granted(&grant).await;
            platform.revoked(&grant).await
        } => reason,
        // The connection ended (its handler, holding the sender, was dropped): nothing to watch.
        _ = closed => return,
    };
    tracing::info!(user = grant.user_id, site = ?grant.site_id, %reason, "SSH access ended");
    // The client hears why first; then nothing it started goes on running (this goes on
    // after the connection has ended).
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, reason, "en".to_owned())
        .await;
    let shells = std::mem::take(&mut *controls.lock().expect("controls lock"));
    end_shells(shells).await;
}

/// Hangs `shells` up, and kills those still running a moment later (a shell that traps SIGHUP,
/// what it left in the background).
async fn end_shells(shells: Vec<ExecControl>) {
    let ends = shells
        .iter()
        .map(|control| control.end(std::time::Duration::from_secs(2)));
    futures::future::join_all(ends).await;
}

impl Drop for Connection {
    /// A connection that ends without closing its channels (the client's network gone) leaves
    /// no shell running in the site.
    fn drop(&mut self) {
        let shells = std::mem::take(
            &mut *self
                .controls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !shells.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(end_shells(shells));
        }
    }
}

impl Connection {
    /// Checks the login's grounds again (before a new shell, command or SFTP session): the
    /// actor as it is now, or why the login no longer holds.
    async fn recheck(&self) -> Result<Actor, String> {
        let Some(grant) = &self.grant else {
            return Err("Not signed in.".to_owned());
        };
        match self.platform.check_grant(grant).await {
            Ok(actor) => Ok(actor),
            Err(err) => Err(err.to_string()),
        }
    }

    fn refuse(&self, user: &str, why: &str) -> Auth {
        let failures = self.limiter.fail(self.ip);
        tracing::info!(ip = %self.ip, login = %user.chars().take(MAX_LOGIN).collect::<String>(), failures, why, "SSH authentication refused");
        Auth::reject()
    }

    /// Starts `request` for the logged-in site on `channel`, bridging its output (stderr apart
    /// when there is no TTY) and exit status back to the client.
    async fn start(
        &mut self,
        channel: ChannelId,
        command: Option<String>,
        session: &mut Session,
    ) -> Result<(), Error> {
        let handle = session.handle();
        let actor = match self.recheck().await {
            Ok(actor) => actor,
            Err(why) => {
                session.channel_success(channel)?;
                tokio::spawn(finish(handle, channel, None, Some(format!("{why}\r\n")), 1));
                return Ok(());
            }
        };
        let site = match &self.login {
            Some(Login::Site { site }) => Site::clone(site),
            Some(Login::Listing) => {
                session.channel_success(channel)?;
                let text = self.listing(&actor).await;
                tokio::spawn(finish(handle, channel, Some(text), None, 0));
                return Ok(());
            }
            None => return Ok(session.channel_failure(channel)?),
        };
        let state = self.channels.entry(channel).or_default();
        state.channel = None;
        let tty = command.is_none();
        let request = ShellRequest {
            size: if tty {
                Some(state.size.unwrap_or((80, 24)))
            } else {
                None
            },
            command,
            database: None,
        };
        match self.platform.open_shell(Some(&actor), site.id, request).await {
            Ok((_, exec)) => {
                session.channel_success(channel)?;
                let exit = exec.exit();
                state.input = Some(Arc::new(Mutex::new(exec.input)));
                state.tty = tty;
                self.controls
                    .lock()
                    .expect("controls lock")
                    .push(exec.control.clone());
                state.control = Some(exec.control);
                let mut output = exec.output;
                tokio::spawn(async move {
                    while let Some(Ok((stream, bytes))) = output.next().await {
                        let sent = if stream == LogStream::Stderr && !tty {
                            handle.extended_data(channel, 1, bytes).await
                        } else {
                            handle.data(channel, bytes).await
                        };
                        if sent.is_err() {
                            break;
                        }
                    }
                    let code = exit.code().await.ok().flatten().unwrap_or(255);
                    finish(handle, channel, None, None, u32::try_from(code).unwrap_or(255)).await;
                });
            }
            Err(err) => {
                // Said to the user on stderr, the way sshd reports a refused session.
                session.channel_success(channel)?;
                tokio::spawn(finish(handle, channel, None, Some(format!("{err}\r\n")), 1));
            }
        }
        Ok(())
    }

    async fn listing(&self, actor: &Actor) -> String {
        let mut text = String::new();
        match self.platform.my_sites(Some(actor)).await {
            Ok(sites) if sites.is_empty() => text.push_str("You are not a member of any site yet.\r\n"),
            Ok(sites) => {
                text.push_str(&format!("Your sites, {}:\r\n", actor.username));
                for site in sites {
                    text.push_str(&format!("  {:<32} {}\r\n", site.name, site.state));
                }
                text.push_str(&format!(
                    "Open one with: ssh -p {} <site>@<this host>\r\n",
                    self.public_port
                ));
            }
            Err(err) => text.push_str(&format!("{err}\r\n")),
        }
        text
    }
}

/// Ends a channel: optional last words on stdout and stderr, the exit status, EOF, close.
async fn finish(handle: Handle, channel: ChannelId, out: Option<String>, err: Option<String>, code: u32) {
    if let Some(out) = out {
        let _ = handle.data(channel, out.into_bytes()).await;
    }
    if let Some(err) = err {
        let _ = handle.extended_data(channel, 1, err.into_bytes()).await;
    }
    let _ = handle.exit_status_request(channel, code).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

impl russh::server::Handler for Connection {
    type Error = Error;

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if self.limiter.blocked(self.ip) {
            return Ok(self.refuse(user, "too many failures from this address"));
        }
        if user.is_empty() || user.len() > MAX_LOGIN {
            return Ok(self.refuse(user, "bad login name"));
        }
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let Some(actor) = self.platform.actor_for_key(&fingerprint).await? else {
            return Ok(self.refuse(user, "unknown key"));
        };
        let mut grant = Grant {
            user_id: actor.user_id,
            key: Some(fingerprint),
            session: None,
            site_id: None,
            token: None,
        };
        let login = user.to_ascii_lowercase();
        if login == actor.username || login == "sites" {
            tracing::info!(ip = %self.ip, user = %actor.username, "SSH login to the site list");
            self.grant = Some(grant);
            self.login = Some(Login::Listing);
            self.authenticated.store(true, Ordering::Release);
            return Ok(Auth::Accept);
        }
        match self.platform.site_by_name(Some(&actor), &login).await {
            Ok(site) => {
                tracing::info!(ip = %self.ip, user = %actor.username, site = %site.name, "SSH login");
                grant.site_id = Some(site.id);
                self.grant = Some(grant);
                self.login = Some(Login::Site { site: Box::new(site) });
                self.authenticated.store(true, Ordering::Release);
                Ok(Auth::Accept)
            }
            // Not a member, or no such site: the same answer, as for a wrong key.
            Err(platform::Error::NotFound(_) | platform::Error::Invalid { .. }) => {
                Ok(self.refuse(user, "no such site for this user"))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.alive.is_none()
            && let Some(grant) = self.grant.clone()
        {
            let (alive, closed) = tokio::sync::oneshot::channel();
            self.alive = Some(alive);
            tokio::spawn(guard(
                self.platform.clone(),
                grant,
                session.handle(),
                self.controls.clone(),
                closed,
            ));
        }
        let id = channel.id();
        self.channels.insert(
            id,
            ChannelState {
                channel: Some(channel),
                ..ChannelState::default()
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let size = platform::sites::clamp_size(
            u16::try_from(cols).unwrap_or(u16::MAX),
            u16::try_from(rows).unwrap_or(u16::MAX),
        );
        self.channels.entry(channel).or_default().size = Some(size);
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.start(channel, None, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        self.start(channel, Some(command), session).await
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(input) = self.channels.get(&channel).and_then(|c| c.input.clone()) {
            let mut input = input.lock().await;
            if input.write_all(data).await.is_err() || input.flush().await.is_err() {
                tracing::debug!(?channel, "the shell no longer reads its input");
            }
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        // The client has no more input (`ssh site@host 'cat > f' < f`): the command sees EOF.
        // A terminal has no end of input (as with sshd): what was typed is still being read,
        // and the shell ends when told to.
        let Some(state) = self.channels.get(&channel) else {
            return Ok(());
        };
        if state.sftp {
            // The client is done with SFTP (it waits for every answer before saying so): the
            // session ends well, which scp checks.
            session.exit_status_request(channel, 0)?;
            session.eof(channel)?;
            session.close(channel)?;
        } else if !state.tty
            && let Some(input) = state.input.clone()
        {
            let _ = input.lock().await.shutdown().await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(Login::Site { site }) = &self.login else {
            return Ok(session.channel_failure(channel)?);
        };
        let site = Site::clone(site);
        let actor = match self.recheck().await {
            Ok(actor) => actor,
            Err(why) => {
                tracing::info!(site = %site.name, %why, "SFTP refused");
                return Ok(session.channel_failure(channel)?);
            }
        };
        let taken = self.channels.get_mut(&channel).and_then(|c| c.channel.take());
        let (Some(stream), "sftp") = (taken, name) else {
            return Ok(session.channel_failure(channel)?);
        };
        let opened = self.platform.open_files(Some(&actor), site.id).await;
        let sftp = opened.and_then(|opened| {
            crate::sftp::SftpSession::new(&opened.directory, opened.uid, opened.site.name, opened.disk)
                .map_err(|e| platform::Error::Conflict(e.to_string()))
        });
        match sftp {
            Ok(sftp) => {
                if let Some(state) = self.channels.get_mut(&channel) {
                    state.sftp = true;
                }
                session.channel_success(channel)?;
                tokio::spawn(russh_sftp::server::run(stream.into_stream(), sftp));
            }
            Err(err) => {
                tracing::info!(user = %actor.username, site = %site.name, error = %err, "SFTP refused");
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(control) = self.channels.get(&channel).and_then(|c| c.control.clone()) {
            let (cols, rows) = platform::sites::clamp_size(
                u16::try_from(cols).unwrap_or(u16::MAX),
                u16::try_from(rows).unwrap_or(u16::MAX),
            );
            if let Err(err) = control.resize(cols, rows).await {
                tracing::debug!(?channel, error = %err, "resizing an SSH terminal failed");
            }
        }
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        // The client went away: a shell still running is hung up, as sshd does, and killed if
        // it ignores that.
        if let Some(state) = self.channels.remove(&channel)
            && let Some(control) = state.control
        {
            tokio::spawn(end_shells(vec![control]));
        }
        Ok(())
    }
}
