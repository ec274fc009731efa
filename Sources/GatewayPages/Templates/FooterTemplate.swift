/// The end of every page (a mustache partial named `footer`). Immutable.
enum FooterTemplate {
    static let text = """
        </main>
        </body>
        </html>

        """
}
