// The Close button of the gateway's end and error pages (the page's Content-Security-Policy
// allows no inline handlers), and closing the tab at once where the page asks for it (the portal
// session expired: the person must start over from the portal). Browsers only let a page close a
// tab that a script opened, which is how the portal opens the gateway; elsewhere the page stays.
const button = document.getElementById('close');
if (button) button.addEventListener('click', () => window.close());
if (document.getElementById('autoclose')) window.close();
