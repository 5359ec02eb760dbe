package dashboard

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/skip2/go-qrcode"

	"github.com/kogge-fleet/kogge/fleet-server/dashboard/auth"
	"github.com/kogge-fleet/kogge/fleet-server/store"
)

type usersData struct {
	Users       []store.User
	Roles       []auth.Role
	Now         int64
	Form        userForm
	Error       string
	NewPassword string
	NewUser     string
}

type userForm struct {
	Name, DisplayName, Email, Role string
}

func (h *Handler) usersPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderUsers(w, r, s, http.StatusOK, usersData{Form: userForm{Role: string(auth.Viewer)}})
}

func (h *Handler) renderUsers(w http.ResponseWriter, r *http.Request, s *session, status int, d usersData) error {
	var err error
	if d.Users, err = h.svc.Users.Users(r.Context()); err != nil {
		return err
	}
	d.Roles = auth.Roles()
	d.Now = h.opts.Clock().UnixMilli()
	return h.render(w, r, s, status, "users", h.tr(s.lang, "nav.users"), d)
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	f := userForm{Name: strings.ToLower(strings.TrimSpace(r.PostFormValue("name"))), DisplayName: strings.TrimSpace(r.PostFormValue("display_name")),
		Email: strings.TrimSpace(r.PostFormValue("email")), Role: r.PostFormValue("role")}
	refuse := func(msg string) error {
		return h.renderUsers(w, r, s, http.StatusBadRequest, usersData{Form: f, Error: msg})
	}
	if err := ValidUserName(f.Name); err != nil {
		return refuse(h.tr(s.lang, "users.bad_name"))
	}
	if !auth.Role(f.Role).Valid() {
		return refuse(h.tr(s.lang, "users.bad_role"))
	}
	if f.Email != "" {
		if _, err := mail.ParseAddress(f.Email); err != nil {
			return refuse(h.tr(s.lang, "users.bad_email"))
		}
	}
	password := r.PostFormValue("password")
	generated := password == ""
	if generated {
		password = auth.RandomPassword()
	} else if err := auth.CheckPassword(password, f.Name); err != nil {
		return refuse(h.tr(s.lang, "password.weak", auth.MinPasswordLen))
	}
	hash, err := auth.HashPassword(password, h.opts.Password)
	if err != nil {
		return err
	}
	u := store.User{ID: uuid.Must(uuid.NewV7()).String(), Name: f.Name, DisplayName: clip(f.DisplayName, 200),
		Email: clip(f.Email, 200), Role: f.Role, PasswordHash: hash, CreatedAt: h.opts.Clock().UnixMilli()}
	if err := h.svc.Users.CreateUser(ctx, u); errors.Is(err, store.ErrUserExists) {
		return refuse(h.tr(s.lang, "users.exists", f.Name))
	} else if err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.create", "user:"+u.Name, map[string]any{"role": u.Role}); err != nil {
		return err
	}
	d := usersData{Form: userForm{Role: string(auth.Viewer)}, NewUser: u.Name}
	if generated {
		d.NewPassword = password
	}
	return h.renderUsers(w, r, s, http.StatusOK, d)
}

type userData struct {
	U           store.User
	Roles       []auth.Role
	Sessions    []store.Session
	Now         int64
	Self        bool
	Error       string
	NewPassword string
}

func (h *Handler) userPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderUser(w, r, s, http.StatusOK, "", "")
}

func (h *Handler) renderUser(w http.ResponseWriter, r *http.Request, s *session, status int, msg, newPassword string) error {
	ctx := r.Context()
	u, err := h.svc.Users.User(ctx, r.PathValue("user"))
	if errors.Is(err, store.ErrNotFound) {
		return &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	if err != nil {
		return err
	}
	now := h.opts.Clock().UnixMilli()
	d := userData{U: u, Roles: auth.Roles(), Now: now, Self: u.ID == s.User.ID, Error: msg, NewPassword: newPassword}
	if d.Sessions, err = h.svc.Users.UserSessions(ctx, u.ID, now); err != nil {
		return err
	}
	return h.render(w, r, s, status, "user", h.tr(s.lang, "user.title", u.Name), d)
}

func (h *Handler) targetUser(r *http.Request, s *session) (store.User, error) {
	u, err := h.svc.Users.User(r.Context(), r.PathValue("user"))
	if errors.Is(err, store.ErrNotFound) {
		return u, &userError{http.StatusNotFound, h.tr(s.lang, "error.notfound")}
	}
	return u, err
}

func (h *Handler) updateUser(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.targetUser(r, s)
	if err != nil {
		return err
	}
	role := r.PostFormValue("role")
	if !auth.Role(role).Valid() {
		return h.renderUser(w, r, s, http.StatusBadRequest, h.tr(s.lang, "users.bad_role"), "")
	}
	display, email := clip(strings.TrimSpace(r.PostFormValue("display_name")), 200), clip(strings.TrimSpace(r.PostFormValue("email")), 200)
	if email != "" {
		if _, err := mail.ParseAddress(email); err != nil {
			return h.renderUser(w, r, s, http.StatusBadRequest, h.tr(s.lang, "users.bad_email"), "")
		}
	}
	disabled := r.PostFormValue("disabled") == "1"
	err = h.svc.Users.UpdateUser(ctx, u.ID, store.UserUpdate{Role: &role, DisplayName: &display, Email: &email, Disabled: &disabled},
		h.opts.Clock().UnixMilli())
	if errors.Is(err, store.ErrLastAdmin) {
		return h.renderUser(w, r, s, http.StatusConflict, h.tr(s.lang, "users.last_admin"), "")
	}
	if err != nil {
		return err
	}
	// A new role or a disabled account applies at once: the sessions end
	// (the admin's own current one stays).
	if role != u.Role || disabled {
		keep := ""
		if u.ID == s.User.ID {
			keep = s.IDHash
		}
		if _, err := h.svc.Users.DeleteUserSessions(ctx, u.ID, keep); err != nil {
			return err
		}
	}
	if err := h.audit(ctx, s, "user.update", "user:"+u.Name, map[string]any{"role": role, "previous_role": u.Role,
		"disabled": disabled}); err != nil {
		return err
	}
	http.Redirect(w, r, "/users/"+url.PathEscape(u.ID)+"?done=done.user_saved", http.StatusSeeOther)
	return nil
}

func (h *Handler) resetPassword(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.targetUser(r, s)
	if err != nil {
		return err
	}
	if u.OIDCSubject != "" {
		return h.renderUser(w, r, s, http.StatusConflict, h.tr(s.lang, "users.oidc_password"), "")
	}
	password := auth.RandomPassword()
	hash, err := auth.HashPassword(password, h.opts.Password)
	if err != nil {
		return err
	}
	if err := h.svc.Users.SetPassword(ctx, u.ID, hash, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	keep := ""
	if u.ID == s.User.ID {
		keep = s.IDHash
	}
	if _, err := h.svc.Users.DeleteUserSessions(ctx, u.ID, keep); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.password_reset", "user:"+u.Name, nil); err != nil {
		return err
	}
	return h.renderUser(w, r, s, http.StatusOK, "", password)
}

func (h *Handler) unlockUser(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.targetUser(r, s)
	if err != nil {
		return err
	}
	if err := h.svc.Users.UnlockUser(ctx, u.ID, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.unlock", "user:"+u.Name, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/users/"+url.PathEscape(u.ID)+"?done=done.user_unlocked", http.StatusSeeOther)
	return nil
}

func (h *Handler) resetTOTP(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.targetUser(r, s)
	if err != nil {
		return err
	}
	if err := h.svc.Users.SetTOTP(ctx, u.ID, "", false, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.totp_reset", "user:"+u.Name, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/users/"+url.PathEscape(u.ID)+"?done=done.totp_reset", http.StatusSeeOther)
	return nil
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.targetUser(r, s)
	if err != nil {
		return err
	}
	if u.ID == s.User.ID {
		return h.renderUser(w, r, s, http.StatusConflict, h.tr(s.lang, "users.self_delete"), "")
	}
	if err := h.svc.Users.DeleteUser(ctx, u.ID); errors.Is(err, store.ErrLastAdmin) {
		return h.renderUser(w, r, s, http.StatusConflict, h.tr(s.lang, "users.last_admin"), "")
	} else if err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.delete", "user:"+u.Name, map[string]any{"role": u.Role}); err != nil {
		return err
	}
	http.Redirect(w, r, "/users?done=done.user_deleted", http.StatusSeeOther)
	return nil
}

type accountData struct {
	U        store.User
	Sessions []store.Session
	Current  string
	Now      int64
	Local    bool
	Secret   string
	QR       template.URL
	URI      string
	Error    string
	Langs    []string
}

func (h *Handler) account(w http.ResponseWriter, r *http.Request, s *session) error {
	return h.renderAccount(w, r, s, http.StatusOK, "")
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) error {
	ctx := r.Context()
	u, err := h.svc.Users.User(ctx, s.User.ID)
	if err != nil {
		return err
	}
	now := h.opts.Clock()
	d := accountData{U: u, Current: s.IDHash, Now: now.UnixMilli(), Local: u.OIDCSubject == "", Error: msg, Langs: languages}
	if d.Sessions, err = h.svc.Users.UserSessions(ctx, u.ID, now.UnixMilli()); err != nil {
		return err
	}
	if d.Local && !u.TOTPEnabled {
		// The secret is kept (not enabled) from the first view, so that
		// a reload does not invalidate what the app has scanned.
		if u.TOTPSecret == "" {
			secret, err := auth.NewTOTPSecret()
			if err != nil {
				return err
			}
			if err := h.svc.Users.SetTOTP(ctx, u.ID, secret, false, now.UnixMilli()); err != nil {
				return err
			}
			u.TOTPSecret = secret
		}
		d.Secret = u.TOTPSecret
		d.URI = auth.TOTPURI("Kogge", u.Name, u.TOTPSecret)
		if png, err := qrcode.Encode(d.URI, qrcode.Medium, 192); err == nil {
			// A data URL of our own PNG: safe to mark as a URL.
			d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		}
	}
	return h.render(w, r, s, status, "account", h.tr(s.lang, "account.title"), d)
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.svc.Users.User(ctx, s.User.ID)
	if err != nil {
		return err
	}
	if u.OIDCSubject != "" {
		return h.renderAccount(w, r, s, http.StatusConflict, h.tr(s.lang, "users.oidc_password"))
	}
	if ok, _ := h.limit.Allow(clientAddr(r)); !ok {
		return h.renderAccount(w, r, s, http.StatusTooManyRequests, h.tr(s.lang, "login.ratelimited"))
	}
	if ok, _, _ := auth.VerifyPassword(u.PasswordHash, r.PostFormValue("current"), h.opts.Password); !ok {
		return h.renderAccount(w, r, s, http.StatusBadRequest, h.tr(s.lang, "password.wrong_current"))
	}
	pw := r.PostFormValue("new")
	if pw != r.PostFormValue("repeat") {
		return h.renderAccount(w, r, s, http.StatusBadRequest, h.tr(s.lang, "password.mismatch"))
	}
	if err := auth.CheckPassword(pw, u.Name); err != nil {
		return h.renderAccount(w, r, s, http.StatusBadRequest, h.tr(s.lang, "password.weak", auth.MinPasswordLen))
	}
	hash, err := auth.HashPassword(pw, h.opts.Password)
	if err != nil {
		return err
	}
	if err := h.svc.Users.SetPassword(ctx, u.ID, hash, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if _, err := h.svc.Users.DeleteUserSessions(ctx, u.ID, s.IDHash); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.password_change", "user:"+u.Name, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?done=done.password", http.StatusSeeOther)
	return nil
}

func (h *Handler) accountLang(w http.ResponseWriter, r *http.Request, s *session) error {
	lang := r.PostFormValue("lang")
	if !slices.Contains(languages, lang) {
		lang = ""
	}
	if err := h.svc.Users.UpdateUser(r.Context(), s.User.ID, store.UserUpdate{Lang: &lang}, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if lang != "" {
		h.setCookie(w, r, langCookie, lang, 365*24*3600)
	}
	http.Redirect(w, r, "/account?done=done.lang", http.StatusSeeOther)
	return nil
}

func (h *Handler) enableTOTP(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.svc.Users.User(ctx, s.User.ID)
	if err != nil {
		return err
	}
	if u.TOTPSecret == "" || u.TOTPEnabled || u.OIDCSubject != "" {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return nil
	}
	step, ok := auth.VerifyTOTP(u.TOTPSecret, r.PostFormValue("code"), h.opts.Clock())
	if !ok {
		return h.renderAccount(w, r, s, http.StatusBadRequest, h.tr(s.lang, "totp.wrong"))
	}
	now := h.opts.Clock().UnixMilli()
	if err := h.svc.Users.SetTOTP(ctx, u.ID, u.TOTPSecret, true, now); err != nil {
		return err
	}
	if _, err := h.svc.Users.UseTOTPStep(ctx, u.ID, step); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.totp_enable", "user:"+u.Name, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?done=done.totp_on", http.StatusSeeOther)
	return nil
}

func (h *Handler) disableTOTP(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := h.svc.Users.User(ctx, s.User.ID)
	if err != nil {
		return err
	}
	if ok, _, _ := auth.VerifyPassword(u.PasswordHash, r.PostFormValue("current"), h.opts.Password); !ok {
		return h.renderAccount(w, r, s, http.StatusBadRequest, h.tr(s.lang, "password.wrong_current"))
	}
	if err := h.svc.Users.SetTOTP(ctx, u.ID, "", false, h.opts.Clock().UnixMilli()); err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.totp_disable", "user:"+u.Name, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?done=done.totp_off", http.StatusSeeOther)
	return nil
}

func (h *Handler) endOtherSessions(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	n, err := h.svc.Users.DeleteUserSessions(ctx, s.User.ID, s.IDHash)
	if err != nil {
		return err
	}
	if err := h.audit(ctx, s, "user.sessions_end", "user:"+s.User.Name, map[string]any{"sessions": n}); err != nil {
		return err
	}
	http.Redirect(w, r, "/account?done=done.sessions", http.StatusSeeOther)
	return nil
}
