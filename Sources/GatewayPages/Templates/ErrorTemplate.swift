/// An error shown to a person in the browser (never JSON on a browser route). Context:
/// `title`, `message`, `request_id`, optional `code`. Immutable.
enum ErrorTemplate {
    static let text = """
        {{> header}}
        <p class="error" role="alert" id="error-message">{{message}}</p>
        {{#code}}<p class="note">Error: <code id="error-code">{{code}}</code></p>{{/code}}
        <p class="note">Request id: <code id="request-id">{{request_id}}</code></p>
        {{> footer}}
        """
}
