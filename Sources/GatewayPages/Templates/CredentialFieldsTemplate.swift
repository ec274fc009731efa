/// The e-mail and password fields and the sign-in button, shared by every sign-in form (the
/// OAuth flow's and the settings pages'). Context: optional `email`. The names and ids
/// (`email`, `password`, `login`) are part of the contract with browser tests. Immutable.
enum CredentialFieldsTemplate {
    static let text = """
        <label for="email">E-mail address</label>
        <input type="email" id="email" name="email" value="{{email}}" autocomplete="username" required maxlength="254" autofocus>
        <label for="password">Password</label>
        <input type="password" id="password" name="password" autocomplete="current-password" required maxlength="1024">
        <button type="submit" id="login" class="primary">Sign in</button>
        """
}
